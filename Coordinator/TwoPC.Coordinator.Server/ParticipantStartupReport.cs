using Microsoft.Extensions.Options;

namespace TwoPC.Coordinator.Server;

/// <summary>Says at start which participants are configured, and warns about every callback protection that is off.</summary>
internal sealed class ParticipantStartupReport(ParticipantDirectory directory, IOptions<CoordinatorLimitsOptions> limits, ILoggerFactory loggers) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        var logger = loggers.CreateLogger("TwoPC.Coordinator.Server.Participants");
        var names = directory.All.Count == 0 ? "(none)" : string.Join(", ", directory.All.Select(p => $"{p.Name} at {p.CallbackUrl}"));
        ParticipantCallLog.ParticipantsConfigured(logger, names, limits.Value.MaxConcurrentParticipantCalls, limits.Value.MaxParticipantConnectionsPerServer);
        if (directory.AllowUnauthenticatedCallbacks)
        {
            var unsigned = directory.All.Where(p => p.Key is null).Select(p => p.Name).ToList();
            ParticipantCallLog.UnauthenticatedCallbacksAllowed(logger, unsigned.Count == 0 ? "none at the moment" : string.Join(", ", unsigned));
        }

        if (directory.AllowUnconfiguredParticipants)
        {
            ParticipantCallLog.UnconfiguredParticipantsAllowed(logger, directory.AllowedCallbackOrigins.Count == 0 ? "none listed: every unconfigured URL is refused" : string.Join(", ", directory.AllowedCallbackOrigins));
        }

        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
