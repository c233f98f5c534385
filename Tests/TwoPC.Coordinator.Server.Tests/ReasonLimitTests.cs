using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace TwoPC.Coordinator.Server.Tests;

/// <summary>
/// Issue 12 item 10: a participant's long No reason is kept only truncated (~1 KiB) in the outcome every status caller
/// reads, the log and the server's memory. The real server on 127.0.0.1:0, and a participant that votes No with 60,000
/// characters of reason (under the 64 KiB a participant's answer may have).
/// </summary>
public sealed class ReasonLimitTests : IAsyncLifetime
{
    private const int LongReason = 60_000;
    private readonly DirectoryInfo _log = Directory.CreateTempSubdirectory("twopc-reason-");
    private WebApplication? _server;
    private WebApplication? _participant;
    private HttpClient _client = null!;
    private string _participantUrl = null!;

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        _participant = builder.Build();
        _participant.MapPost("/talker/prepare", () => Results.Ok(new { vote = "no", reason = "disk quota of tenant exceeded " + new string('x', LongReason) }));
        _participant.MapPost("/talker/rollback", () => Results.Ok(new { outcome = "rolledBack" }));
        await _participant.StartAsync();
        _participantUrl = ServerFixture.BoundAddress(_participant) + "/talker";

        _server = CoordinatorServer.BuildApp([
            "--Urls=http://127.0.0.1:0",
            "--TwoPC:NodeId=reason-test",
            $"--TwoPC:LogDirectory={_log.FullName}",
            .. ServerFixture.DevelopmentParticipants(ServerFixture.BoundAddress(_participant)),
            "--Logging:LogLevel:Default=Warning",
        ]);
        await _server.StartAsync();
        _client = new HttpClient { BaseAddress = new Uri(ServerFixture.BoundAddress(_server)) };
    }

    public async Task DisposeAsync()
    {
        _client.Dispose();
        foreach (var app in new[] { _server, _participant })
        {
            if (app is not null)
            {
                await app.StopAsync();
                await app.DisposeAsync();
            }
        }

        _log.Delete(recursive: true);
    }

    [Fact]
    public async Task Item10_a_participants_long_no_reason_is_truncated_in_the_outcome_and_the_status()
    {
        using var begin = await _client.PostAsJsonAsync("/transactions", new { timeoutSeconds = 30 });
        var id = (await begin.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString();
        using (var branch = await _client.PostAsJsonAsync($"/transactions/{id}/branches", new { resourceManager = "talker", callbackUrl = _participantUrl }))
        {
            Assert.Equal(HttpStatusCode.Created, branch.StatusCode);
        }

        using var commit = await _client.PostAsync($"/transactions/{id}/commit", null);
        Assert.Equal(HttpStatusCode.OK, commit.StatusCode);
        var outcome = await commit.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("RolledBack", outcome.GetProperty("kind").GetString());
        AssertTruncated(outcome.GetProperty("reason").GetString());

        var status = await _client.GetFromJsonAsync<JsonElement>($"/transactions/{id}");
        AssertTruncated(status.GetProperty("outcome").GetProperty("reason").GetString());
    }

    private static void AssertTruncated(string? reason)
    {
        Assert.NotNull(reason);

        // The start survives (what the participant said), the rest is cut at about 1 KiB and says so.
        Assert.Contains("disk quota of tenant exceeded", reason, StringComparison.Ordinal);
        Assert.True(reason.Length <= 1200, $"The reason is {reason.Length} characters long; at most about 1 KiB is kept.");
        Assert.Contains("truncated", reason, StringComparison.Ordinal);
    }
}
