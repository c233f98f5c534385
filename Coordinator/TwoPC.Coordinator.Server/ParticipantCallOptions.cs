namespace TwoPC.Coordinator.Server;

/// <summary>
/// Bounds on the coordinator's calls to remote participants (configuration <c>Coordinator:Limits</c>), so one transaction
/// with thousands of branches, or one slow participant, cannot exhaust the coordinator's sockets and file descriptors.
/// </summary>
public sealed class ParticipantCallOptions
{
    /// <summary>The largest participant answer body read, in bytes: 64 KiB. A larger answer is the participant's error.</summary>
    public const int MaxAnswerBytes = 64 * 1024;

    /// <summary><c>Coordinator:Limits:MaxParticipantConnectionsPerServer</c>: connections open at once to one participant server (default 64).</summary>
    public int MaxParticipantConnectionsPerServer { get; init; } = 64;

    /// <summary><c>Coordinator:Limits:MaxConcurrentParticipantCalls</c>: participant calls in flight at once, all participants together (default 256); the rest wait their turn.</summary>
    public int MaxConcurrentParticipantCalls { get; init; } = 256;

    /// <summary>Reads <c>Coordinator:Limits</c>.</summary>
    /// <exception cref="InvalidOperationException">A limit is not positive.</exception>
    public static ParticipantCallOptions FromConfiguration(IConfiguration coordinator)
    {
        ArgumentNullException.ThrowIfNull(coordinator);
        var limits = coordinator.GetSection("Limits");
        var options = new ParticipantCallOptions
        {
            MaxParticipantConnectionsPerServer = limits.GetValue(nameof(MaxParticipantConnectionsPerServer), 64),
            MaxConcurrentParticipantCalls = limits.GetValue(nameof(MaxConcurrentParticipantCalls), 256),
        };
        if (options.MaxParticipantConnectionsPerServer <= 0 || options.MaxConcurrentParticipantCalls <= 0)
        {
            throw new InvalidOperationException("Coordinator:Limits:MaxParticipantConnectionsPerServer and Coordinator:Limits:MaxConcurrentParticipantCalls must be positive.");
        }

        return options;
    }
}
