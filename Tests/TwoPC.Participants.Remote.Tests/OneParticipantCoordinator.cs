using Microsoft.AspNetCore.Builder;
using TwoPC.Coordinator.Server;

namespace TwoPC.Participants.Remote.Tests;

/// <summary>
/// The real coordinator server on 127.0.0.1:0 that knows one participant: its callback URL on <c>participantPort</c>
/// and its key. Anonymous callers on loopback are allowed (the tests' callers have no API key); the participant signs.
/// </summary>
internal static class OneParticipantCoordinator
{
    public static async Task<WebApplication> StartAsync(string nodeId, string participant, int participantPort, string key, string logDirectory)
    {
        var app = CoordinatorServer.BuildApp([
            "--Urls=http://127.0.0.1:0",
            $"--TwoPC:NodeId={nodeId}",
            $"--TwoPC:LogDirectory={logDirectory}",
            "--TwoPC:RetryMaxDelay=00:00:00.200",
            "--Coordinator:Authentication:AllowAnonymous=true",
            $"--Coordinator:Participants:{participant}:CallbackUrl=http://127.0.0.1:{participantPort}/twopc",
            $"--Coordinator:Participants:{participant}:Key={key}",
            "--Logging:LogLevel:Default=Warning",
        ]);
        await app.StartAsync();
        return app;
    }
}
