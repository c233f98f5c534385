using System.Collections.Concurrent;
using TwoPC.Durability;
using TwoPC.Recovery;
using TwoPC.Transactions;

namespace TwoPC.Protocol;

/// <summary>
/// What this process knows about transactions: the live ones (begun here and not finished), the
/// logged decisions recovery is still driving, the heuristic outcomes on record, and a bounded
/// window of recent outcomes for status queries.
/// </summary>
internal sealed class TransactionTable(int recentCapacity) : ITransactionRecords
{
    private readonly ConcurrentDictionary<GlobalTransactionId, GlobalTransaction> _active = new();
    private readonly ConcurrentDictionary<GlobalTransactionId, Task<TransactionOutcome>> _recovering = new();
    private readonly ConcurrentDictionary<GlobalTransactionId, HeuristicRecord> _heuristics = new();
    private readonly ConcurrentDictionary<GlobalTransactionId, TransactionOutcome> _recent = new();
    private readonly ConcurrentQueue<GlobalTransactionId> _recentOrder = new();
    private readonly ConcurrentDictionary<GlobalTransactionId, Task> _completions = new();
    private readonly ConcurrentDictionary<GlobalTransactionId, PhaseTwoProgress> _phaseTwo = new();

    public int ActiveCount => _active.Count;

    public int RecoveringCount => _recovering.Count;

    public int HeuristicCount => _heuristics.Count;

    public void AddActive(GlobalTransaction transaction) => _active[transaction.Id] = transaction;

    public bool TryGetActive(GlobalTransactionId id, out GlobalTransaction transaction) => _active.TryGetValue(id, out transaction!);

    public ICollection<GlobalTransaction> Active => _active.Values;

    /// <summary>Tracks a running commit/rollback so shutdown can wait for it.</summary>
    public void TrackCompletion(GlobalTransactionId id, Task completion) => _completions[id] = completion;

    public Task[] RunningCompletions() => [.. _completions.Values, .. _recovering.Values];

    public int CompletionCount => _completions.Count;

    public void AddRecovering(GlobalTransactionId id, Task<TransactionOutcome> phaseTwo) => _recovering[id] = phaseTwo;

    /// <summary>Lists a logged decision as being driven, unless it is live already (begun here, or driven by an earlier call).</summary>
    public bool TryAddRecovering(GlobalTransactionId id, Task<TransactionOutcome> phaseTwo) => !_active.ContainsKey(id) && _recovering.TryAdd(id, phaseTwo);

    public bool IsRecovering(GlobalTransactionId id) => _recovering.ContainsKey(id);

    public void AddHeuristic(HeuristicRecord record) => _heuristics[record.TransactionId] = record;

    public bool TryGetHeuristic(GlobalTransactionId id, out HeuristicRecord record) => _heuristics.TryGetValue(id, out record!);

    public bool RemoveHeuristic(GlobalTransactionId id) => _heuristics.TryRemove(id, out _);

    public IReadOnlyList<HeuristicRecord> Heuristics => [.. _heuristics.Values.OrderBy(h => h.RecordedAt)];

    /// <summary>Everything that is live right now: begun here and unfinished, or a logged decision being driven.</summary>
    public HashSet<GlobalTransactionId> SnapshotLive()
    {
        var live = new HashSet<GlobalTransactionId>(_active.Keys);
        live.UnionWith(_recovering.Keys);
        return live;
    }

    public bool IsLive(GlobalTransactionId id) => _active.ContainsKey(id) || _recovering.ContainsKey(id);

    /// <summary>Moves a transaction from live to the recent outcomes.</summary>
    public void Complete(TransactionOutcome outcome)
    {
        var id = outcome.TransactionId;
        if (recentCapacity > 0)
        {
            _recent[id] = outcome;
            _recentOrder.Enqueue(id);
            while (_recentOrder.Count > recentCapacity && _recentOrder.TryDequeue(out var old))
            {
                _recent.TryRemove(old, out _);
            }
        }

        _active.TryRemove(id, out _);
        _recovering.TryRemove(id, out _);
        _completions.TryRemove(id, out _);
    }

    public bool TryGetRecent(GlobalTransactionId id, out TransactionOutcome outcome) => _recent.TryGetValue(id, out outcome!);

    /// <summary>Phase 2 of a commit decision is running (in the normal path or re-driven by recovery).</summary>
    public void AddPhaseTwo(PhaseTwoProgress progress) => _phaseTwo[progress.TransactionId] = progress;

    /// <summary>Phase 2 is over (called after <see cref="Complete"/>, so a status query never sees neither).</summary>
    public void RemovePhaseTwo(PhaseTwoProgress progress) => _phaseTwo.TryRemove(new KeyValuePair<GlobalTransactionId, PhaseTwoProgress>(progress.TransactionId, progress));

    public bool TryGetPhaseTwo(GlobalTransactionId id, out PhaseTwoProgress progress) => _phaseTwo.TryGetValue(id, out progress!);

    public ICollection<PhaseTwoProgress> PhaseTwo => _phaseTwo.Values;
}

/// <summary>
/// Phase 2 of one commit decision while it runs: the branches it commits (with their recovery data),
/// which of them have acknowledged, and the last error of those still being retried. Operators read it
/// (<see cref="TransactionCoordinator.GetInDoubt"/>); forced actions take the recovery data from it.
/// </summary>
internal sealed class PhaseTwoProgress(GlobalTransactionId transactionId, DateTimeOffset decidedAt, IReadOnlyList<LoggedBranch> branches, bool logged)
{
    private readonly int[] _acknowledged = new int[branches.Count];
    private readonly string?[] _lastError = new string?[branches.Count];

    public GlobalTransactionId TransactionId { get; } = transactionId;

    /// <summary>When the commit decision was taken.</summary>
    public DateTimeOffset DecidedAt { get; } = decidedAt;

    public IReadOnlyList<LoggedBranch> Branches { get; } = branches;

    /// <summary>Whether the decision is in the log (false for the single-prepared-branch optimisation).</summary>
    public bool Logged { get; } = logged;

    public void Acknowledge(int index) => Volatile.Write(ref _acknowledged[index], 1);

    public bool IsAcknowledged(int index) => Volatile.Read(ref _acknowledged[index]) == 1;

    public void Failed(int index, Exception error) =>
        Volatile.Write(ref _lastError[index], error is OperationCanceledException ? "the call did not answer in time" : error.Message);

    public string? LastError(int index) => Volatile.Read(ref _lastError[index]);

    /// <summary>The index of the branch <paramref name="xid"/> of <paramref name="resourceManager"/>, or -1.</summary>
    public int IndexOf(string resourceManager, Xid xid)
    {
        for (var i = 0; i < Branches.Count; i++)
        {
            if (Branches[i].Xid == xid && string.Equals(Branches[i].ResourceManager, resourceManager, StringComparison.Ordinal))
            {
                return i;
            }
        }

        return -1;
    }
}
