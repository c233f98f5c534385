using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using TwoPC.Diagnostics;
using TwoPC.Durability;
using TwoPC.Participants;
using TwoPC.Recovery;
using TwoPC.Transactions;

namespace TwoPC.Protocol;

/// <summary>
/// The transaction coordinator of one node: begins global transactions, runs two-phase commit with
/// presumed abort over a durable <see cref="ITransactionLog"/>, and recovers after a crash.
/// </summary>
/// <remarks>
/// Call <see cref="StartAsync"/> before the first <see cref="Begin"/>: it reads the log, re-drives
/// phase 2 of every logged decision, and resolves what the resource managers hold in doubt. Register
/// every resource manager (under the same name) before starting, so recovery can reach them.
/// </remarks>
public sealed partial class TransactionCoordinator : IAsyncDisposable
{
    // This class is the lifecycle (start and recovery, begin, stop, background loops) and the public face. It owns the
    // pieces and hands them down: the registry and the id allocator (no callbacks into this class), the completions
    // behind tx.CommitAsync/RollbackAsync, and the operator's status queries and hand resolutions.
    private readonly TransactionCoordinatorOptions _options;
    private readonly ITransactionLog _log;
    private readonly ResourceManagerRegistry _resourceManagers;
    private readonly ILogger _logger;
    private readonly Meter _meter;
    private readonly CoordinatorMetrics _metrics;
    private readonly TransactionTable _table;
    private readonly BranchCalls _calls;
    private readonly TwoPhaseCommit _protocol;
    private readonly RecoveryManager _recovery;
    private readonly ForcedResolution _forced;
    private readonly CoordinatorStatus _status;
    private readonly TransactionCompletions _completions;
    private readonly CancellationTokenSource _stopping = new();
    private readonly TransactionIdAllocator _ids;
    private readonly RedriveGates _redriveGates = new(DefaultRedriveParallelism);
    private readonly CommitMarkerJanitor _markers;
    private Task _background = Task.CompletedTask;
    private volatile int _phase; // 0 created, 1 starting, 2 running, 3 stopping, 4 stopped

    /// <summary>How often finished commit markers are deleted (in batches, off the hot path).</summary>
    private static readonly TimeSpan MarkerDeletionPeriod = TimeSpan.FromMilliseconds(100);

    /// <summary>Creates a coordinator; nothing happens until <see cref="StartAsync"/>.</summary>
    /// <exception cref="ArgumentException">An option is invalid (the message names it).</exception>
    public TransactionCoordinator(
        TransactionCoordinatorOptions options,
        ITransactionLog log,
        IEnumerable<IResourceManager>? resourceManagers = null,
        ILoggerFactory? loggerFactory = null,
        IMeterFactory? meterFactory = null,
        TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(log);
        options.Validate();
        _options = options;
        _log = log;
        _ids = new TransactionIdAllocator(NodeId.Parse(options.NodeId));
        Time = timeProvider ?? TimeProvider.System;
        _logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger("TwoPC.Coordinator");
        _resourceManagers = new ResourceManagerRegistry(_logger);
        _table = new TransactionTable(options.RecentOutcomeCapacity);
        _meter = TwoPCTelemetry.CreateMeter(meterFactory);
        _metrics = new CoordinatorMetrics(_meter, () => _table.RecoveringCount + (_phase >= 2 ? _recovery!.LeftInDoubt : 0), () => _table.HeuristicCount);
        _calls = new BranchCalls(options, _logger, Time);
        var lastResourceMetrics = new LastResourceMetrics(_meter);
        _markers = new CommitMarkerJanitor(lastResourceMetrics, _logger);
        _protocol = new TwoPhaseCommit(options, log, _calls, _table, _metrics, _logger, Time, lastResourceMetrics, _markers, _stopping.Token);
        _recovery = new RecoveryManager(options.OrphanSafetyInterval, _ids, _resourceManagers, _table, _calls, _metrics, _logger, Time)
        {
            LastResource = new LastResourceRecovery((store, decision) => _protocol.TryRedriveMarker(store, decision, _resourceManagers.Find), lastResourceMetrics, options.StepHook),
        };
        _status = new CoordinatorStatus(_table, _recovery, Time);
        _forced = new ForcedResolution(_ids, _status, _resourceManagers, log, _table, _calls, _recovery, _metrics, _logger, options.BranchCallTimeout, Time, _stopping.Token);
        _completions = new TransactionCompletions(_protocol, _table, _resourceManagers, Time) { LastResourceCommit = options.LastResourceCommit };
        foreach (var rm in resourceManagers ?? [])
        {
            RegisterResourceManager(rm);
        }
    }

    /// <summary>This coordinator's node id.</summary>
    public NodeId NodeId => _ids.Node;

    /// <summary>The epoch of this start (0 until started).</summary>
    public ulong Epoch => _ids.Epoch;

    /// <summary><see langword="true"/> once start-up recovery is done and transactions can begin.</summary>
    public bool IsStarted => _phase == 2;

    /// <summary>Number of transactions begun here and not finished.</summary>
    public int ActiveTransactions => _table.ActiveCount;

    /// <summary>Number of logged commit decisions whose phase 2 recovery is still driving.</summary>
    public int RecoveringTransactions => _table.RecoveringCount;

    /// <summary>Commits and rollbacks running now (what a shutdown waits for).</summary>
    internal int InFlightCompletions => _table.CompletionCount;

    /// <summary>In-doubt branches the last recovery pass left alone (other nodes', too young, or heuristic).</summary>
    public int InDoubtBranches => _recovery.LeftInDoubt;

    /// <summary>The error that stopped the transaction log, or <see langword="null"/> while it is healthy.</summary>
    public Exception? LogFailure => _log.Failure;

    internal TimeProvider Time { get; }

    /// <summary>
    /// Supplies a resource manager that is not registered when a logged commit decision (re-driven after a
    /// restart) or an operator's forced action names it. A non-null result, whose <see cref="IResourceManager.Name"/>
    /// must be the name asked for, is registered and used; <see langword="null"/> means "unknown" (a re-drive
    /// keeps waiting and asks again at its next retry). Set it before <see cref="StartAsync"/> so start-up
    /// recovery can use it.
    /// </summary>
    /// <remarks>The standalone server resolves every name to a remote participant: the logged recovery data
    /// (the callback URL) is all a remote branch needs.</remarks>
    public Func<string, IResourceManager?>? ResourceManagerResolver
    {
        get => _resourceManagers.Resolver;
        set => _resourceManagers.Resolver = value;
    }

    /// <summary>Registers a resource manager under its <see cref="IResourceManager.Name"/>.</summary>
    /// <exception cref="ArgumentException">The name is invalid, or another resource manager has it.</exception>
    public void RegisterResourceManager(IResourceManager resourceManager) => _resourceManagers.Register(resourceManager);

    /// <summary>The registered resource managers.</summary>
    public IReadOnlyCollection<IResourceManager> ResourceManagers => _resourceManagers.All;

    /// <summary>
    /// Opens the log and recovers: re-drives phase 2 of every logged commit decision (in the background,
    /// until each branch answers), then runs one recovery pass over every registered resource manager.
    /// Transactions can begin when this returns; periodic recovery and the timeout reaper start too.
    /// </summary>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.CompareExchange(ref _phase, 1, 0) != 0)
        {
            throw new InvalidOperationException("The coordinator was already started.");
        }

        var state = await _log.OpenAsync(_ids.Node, cancellationToken).ConfigureAwait(false);
        _ids.StartEpoch(state.Epoch);
        foreach (var warning in state.Warnings)
        {
            _logger.LogOpenWarning(warning);
        }

        foreach (var heuristic in state.Heuristics)
        {
            _table.AddHeuristic(heuristic);
        }

        // Every decision is listed as recovering before the first pass classifies anything; the phase-2 calls
        // themselves queue behind a bound per resource manager, so the pass's scan and orphan rollbacks get connections.
        var redriven = Redrive(state.PendingDecisions);
        _logger.RecoveryLoaded(redriven, state.Heuristics.Count);
        await _recovery.RunPassAsync(cancellationToken).ConfigureAwait(false);
        _phase = 2;
        _background = Task.WhenAll(RecoveryLoopAsync(_stopping.Token), ReaperLoopAsync(_stopping.Token), TakeoverLoopAsync(_stopping.Token), _markers.RunAsync(MarkerDeletionPeriod, Time, _stopping.Token));
        _logger.CoordinatorStarted(_ids.Node.Value, _ids.Epoch);
    }

    /// <summary>Begins a global transaction.</summary>
    /// <param name="timeout">How long it may take until the commit decision; default <see cref="TransactionCoordinatorOptions.DefaultTimeout"/>, at most <see cref="TransactionCoordinatorOptions.MaxTimeout"/>.</param>
    /// <exception cref="CoordinatorUnavailableException">The coordinator is not started (recovery not finished) or is stopping.</exception>
    /// <exception cref="TransactionLogFailedException">The log has failed; no new decision can be made.</exception>
    public GlobalTransaction Begin(TimeSpan? timeout = null)
    {
        if (_phase != 2)
        {
            throw new CoordinatorUnavailableException(_phase < 2
                ? "The coordinator has not finished starting (recovery); call StartAsync first."
                : "The coordinator is stopping; no new transactions are accepted.");
        }

        if (_log.Failure is { } failure)
        {
            throw new TransactionLogFailedException("The transaction log has failed; the coordinator accepts no new transactions until it is restarted.", failure);
        }

        var span = timeout ?? _options.DefaultTimeout;
        if (span <= TimeSpan.Zero || span > _options.MaxTimeout)
        {
            throw new ArgumentOutOfRangeException(nameof(timeout), span, $"The timeout must be positive and at most {_options.MaxTimeout}.");
        }

        var id = _ids.Next();
        var tx = new GlobalTransaction(_completions, id, Time.GetUtcNow() + span);
        _table.AddActive(tx);
        _metrics.Begun.Add(1);
        _logger.TransactionBegun(id, tx.Deadline);
        return tx;
    }

    /// <summary>What this coordinator knows about a transaction (for a live one, with its branches).</summary>
    public TransactionStatus GetStatus(GlobalTransactionId transactionId) => _status.GetStatus(transactionId);

    /// <summary>Heuristic outcomes on record, oldest first.</summary>
    public IReadOnlyList<HeuristicRecord> GetHeuristics() => _table.Heuristics;

    /// <summary>
    /// What waits in doubt, oldest first, without scanning anything: the branches of commit decisions whose phase 2
    /// has not been acknowledged yet (<see cref="InDoubtResolution.Committing"/>; age since the decision, detail the
    /// last error of the retries), and the branches the most recent recovery pass found prepared and left alone
    /// (another node's, too young, heuristic, or a failed rollback; age brought up to now).
    /// </summary>
    public IReadOnlyList<InDoubtReport> GetInDoubt() => _status.GetInDoubt();

    /// <summary>
    /// An operator commits one in-doubt branch by hand, through its resource manager (with the recovery data of the
    /// logged decision when there is one). Refused when it would contradict this coordinator: the transaction is live
    /// here or known rolled back; a transaction of this node with no record at all needs <paramref name="overridePresumedAbort"/>
    /// (presumed abort says it did not commit). A branch of a last-resource transaction with no record here is judged by
    /// its commit marker: the transaction is fenced in its last resource first, and the commit is refused unless the
    /// marker says committed (the override does not apply). Logged and counted (<c>twopc.branches.forced</c>).
    /// </summary>
    /// <param name="resourceManager">The registered name of the branch's resource manager (the resolver is asked for an unknown name).</param>
    /// <param name="xid">The branch.</param>
    /// <param name="overridePresumedAbort">Commit a branch of this node's transaction even though the coordinator has no record of it.</param>
    /// <param name="cancellationToken">Cancels while the action waits for a running recovery pass; once the resource manager is called, the call runs to its end.</param>
    /// <exception cref="CoordinatorUnavailableException">The coordinator is not running.</exception>
    public Task<ForcedBranchResult> ForceCommitBranchAsync(string resourceManager, Xid xid, bool overridePresumedAbort = false, CancellationToken cancellationToken = default)
    {
        EnsureRunning();
        return _forced.ForceAsync(ForcedAction.Commit, resourceManager, xid, overridePresumedAbort, cancellationToken);
    }

    /// <summary>
    /// An operator rolls back one in-doubt branch by hand, through its resource manager. Refused when the branch's
    /// transaction has a commit decision on record here (logged, committing or committed) or is still live; allowed
    /// for a transaction of this node with no record (presumed abort). A branch of a last-resource transaction with no
    /// record here is judged by its commit marker: the transaction is fenced in its last resource first, and the rollback
    /// is refused when the marker says committed. Logged and counted (<c>twopc.branches.forced</c>).
    /// </summary>
    /// <param name="resourceManager">The registered name of the branch's resource manager (the resolver is asked for an unknown name).</param>
    /// <param name="xid">The branch.</param>
    /// <param name="cancellationToken">Cancels while the action waits for a running recovery pass; once the resource manager is called, the call runs to its end.</param>
    /// <exception cref="CoordinatorUnavailableException">The coordinator is not running.</exception>
    public Task<ForcedBranchResult> ForceRollbackBranchAsync(string resourceManager, Xid xid, CancellationToken cancellationToken = default)
    {
        EnsureRunning();
        return _forced.ForceAsync(ForcedAction.Rollback, resourceManager, xid, overridePresumedAbort: false, cancellationToken);
    }

    /// <summary>
    /// An operator has dealt with a heuristic outcome: tell each resource to forget the branch, delete the commit marker
    /// of a last-resource transaction, append END, and drop the record.
    /// </summary>
    /// <returns><see langword="false"/> when no heuristic is on record for the transaction.</returns>
    /// <exception cref="InvalidOperationException">The transaction's marker is in a last resource that is not registered (the record stays).</exception>
    public Task<bool> ForgetHeuristicAsync(GlobalTransactionId transactionId, CancellationToken cancellationToken = default) =>
        _forced.ForgetHeuristicAsync(transactionId, cancellationToken);

    /// <summary>Runs a recovery pass now (it also runs every <see cref="TransactionCoordinatorOptions.RecoveryInterval"/>).</summary>
    public Task<RecoveryReport> RecoverAsync(CancellationToken cancellationToken = default)
    {
        EnsureRunning();
        return _recovery.RunPassAsync(cancellationToken);
    }

    private void EnsureRunning()
    {
        if (_phase != 2)
        {
            throw new CoordinatorUnavailableException("The coordinator is not running.");
        }
    }

    /// <summary>
    /// Stops accepting transactions, waits (until <paramref name="cancellationToken"/>) for commits and
    /// rollbacks in flight, then stops phase-2 retries (recovery finishes them after a restart) and closes the log.
    /// </summary>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _phase, 3) >= 3)
        {
            return;
        }

        var running = _table.RunningCompletions();
        _logger.CoordinatorStopping(running.Length);
        try
        {
            await Task.WhenAll(running).WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Cut short, or a completion failed: either way recovery finishes the rest after a restart.
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        try
        {
            await _background.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        await _log.DisposeAsync().ConfigureAwait(false);
        _phase = 4;
    }

    /// <summary>Stops the coordinator, giving in-flight transactions up to 10 seconds to finish.</summary>
    public async ValueTask DisposeAsync()
    {
        using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await StopAsync(grace.Token).ConfigureAwait(false);
        _stopping.Dispose();
        _recovery.Dispose();
        _meter.Dispose();
    }

    private async Task RecoveryLoopAsync(CancellationToken stopping)
    {
        using var timer = new PeriodicTimer(_options.RecoveryInterval, Time);
        while (await timer.WaitForNextTickAsync(stopping).ConfigureAwait(false))
        {
            try
            {
                await _recovery.RunPassAsync(stopping).ConfigureAwait(false);
            }
            catch (Exception ex) when (!stopping.IsCancellationRequested)
            {
                _logger.RecoveryPassFailed(ex);
            }
        }
    }

    /// <summary>Rolls back transactions that are still active past their deadline (like Narayana's reaper).</summary>
    private async Task ReaperLoopAsync(CancellationToken stopping)
    {
        var period = TimeSpan.FromMilliseconds(Math.Clamp(_options.DefaultTimeout.TotalMilliseconds / 4, 10, 1000));
        using var timer = new PeriodicTimer(period, Time);
        while (await timer.WaitForNextTickAsync(stopping).ConfigureAwait(false))
        {
            var now = Time.GetUtcNow();
            foreach (var tx in _table.Active)
            {
                if (tx.Deadline <= now && tx.State == TransactionState.Active)
                {
                    _logger.TimedOut(tx.Id);
                    _ = _completions.Rollback(tx, "the transaction timed out before commit");
                }
            }
        }
    }
}
