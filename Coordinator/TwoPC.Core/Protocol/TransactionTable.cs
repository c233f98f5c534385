using System.Collections.Concurrent;
using TwoPC.Durability;
using TwoPC.Transactions;

namespace TwoPC.Protocol;

/// <summary>
/// What this process knows about transactions: the live ones (begun here and not finished), the
/// logged decisions recovery is still driving, the heuristic outcomes on record, and a bounded
/// window of recent outcomes for status queries.
/// </summary>
internal sealed class TransactionTable(int recentCapacity)
{
    private readonly ConcurrentDictionary<GlobalTransactionId, GlobalTransaction> _active = new();
    private readonly ConcurrentDictionary<GlobalTransactionId, Task<TransactionOutcome>> _recovering = new();
    private readonly ConcurrentDictionary<GlobalTransactionId, HeuristicRecord> _heuristics = new();
    private readonly ConcurrentDictionary<GlobalTransactionId, TransactionOutcome> _recent = new();
    private readonly ConcurrentQueue<GlobalTransactionId> _recentOrder = new();
    private readonly ConcurrentDictionary<GlobalTransactionId, Task> _completions = new();

    public int ActiveCount => _active.Count;

    public int RecoveringCount => _recovering.Count;

    public int HeuristicCount => _heuristics.Count;

    public void AddActive(GlobalTransaction transaction) => _active[transaction.Id] = transaction;

    public bool TryGetActive(GlobalTransactionId id, out GlobalTransaction transaction) => _active.TryGetValue(id, out transaction!);

    public ICollection<GlobalTransaction> Active => _active.Values;

    /// <summary>Tracks a running commit/rollback so shutdown can wait for it.</summary>
    public void TrackCompletion(GlobalTransactionId id, Task completion) => _completions[id] = completion;

    public Task[] RunningCompletions() => [.. _completions.Values, .. _recovering.Values];

    public void AddRecovering(GlobalTransactionId id, Task<TransactionOutcome> phaseTwo) => _recovering[id] = phaseTwo;

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
}
