using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using TwoPC.Client;
using TwoPC.Diagnostics;
using TwoPC.Participants.PostgreSql;
using TwoPC.Transactions;

namespace TwoPC.Participants.Remote;

/// <summary>
/// A service's PostgreSQL database as a participant of global transactions run by the standalone
/// coordinator. Request handlers join with <see cref="JoinAsync(HttpContext, CancellationToken)"/> (or
/// mark the endpoint <c>AsTwoPCBranch()</c>); the coordinator calls back through the endpoints of
/// <c>MapTwoPCParticipant</c>; <see cref="RecoverAsync"/> settles prepared branches left by a crash.
/// </summary>
public sealed partial class RemoteParticipant : IAsyncDisposable
{
    private static readonly TimeSpan PhaseTwoGrace = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan ClockSkewMargin = TimeSpan.FromSeconds(5);
    private const int TooEarly = 425; // "still in progress": the coordinator asks again

    private static readonly ActivitySource Source = new(TwoPCTelemetry.ActivitySourceName);
    private readonly ConcurrentDictionary<string, RemoteBranch> _branches = new(StringComparer.Ordinal);
    private readonly Func<CancellationToken, Task<ILocalResource>> _createLocal;
    private readonly ConcurrentDictionary<string, byte> _otherNodeWarned = new(StringComparer.Ordinal);
    private ILocalResource? _local;
    private volatile string? _coordinatorNode;

    internal RemoteParticipant(
        IOptions<RemoteParticipantOptions> options,
        TwoPCClient coordinator,
        Func<CancellationToken, Task<ILocalResource>> createLocal,
        ILoggerFactory loggers,
        IMeterFactory? meterFactory,
        TimeProvider? time = null)
    {
        Options = options.Value;
        Time = time ?? TimeProvider.System;
        Coordinator = coordinator;
        _createLocal = createLocal;
        Logger = loggers.CreateLogger("TwoPC.Participants.Remote");
        Metrics = new RemoteParticipantMetrics(Options.Name, meterFactory);
    }

    /// <summary>The participant's settings.</summary>
    public RemoteParticipantOptions Options { get; }

    /// <summary>The participant's clock (deadlines and ages of prepared branches).</summary>
    internal TimeProvider Time { get; }

    /// <summary>The coordinator's client.</summary>
    public TwoPCClient Coordinator { get; }

    /// <summary>The PostgreSQL resource manager (available once the host has started).</summary>
    public PostgresResourceManager ResourceManager =>
        Local is PostgresLocalResource pg ? pg.ResourceManager : throw new NotSupportedException("The participant's local resource is not PostgreSQL.");

    /// <summary>Branches whose request is still working or preparing.</summary>
    public int InFlightBranches => _branches.Values.Count(b => b.IsInFlight);

    internal ILogger Logger { get; }

    internal RemoteParticipantMetrics Metrics { get; }

    /// <summary>The database the branches run in (available once the host has started).</summary>
    internal ILocalResource Local =>
        _local ?? throw new InvalidOperationException("The remote participant starts with the host; use it after startup.");

    /// <summary>Creates the resource manager (fails fast when <c>max_prepared_transactions</c> is 0).</summary>
    internal async Task StartAsync(CancellationToken cancellationToken)
    {
        _local = await _createLocal(cancellationToken).ConfigureAwait(false);
        if (string.IsNullOrEmpty(Options.Key))
        {
            Logger.UnauthenticatedCallbacks(Options.Name); // only possible with AllowUnauthenticatedCallbacks (validated at start)
        }

        Logger.Ready(Options.Name, Options.CoordinatorUrl!, Options.CallbackUrl!);
    }

    internal void Forget(RemoteBranch branch) => _branches.TryRemove(new KeyValuePair<string, RemoteBranch>(branch.Xid.ToString(), branch));

    /// <inheritdoc />
    public ValueTask DisposeAsync()
    {
        _local?.Dispose();
        Metrics.Dispose();
        return ValueTask.CompletedTask;
    }
}
