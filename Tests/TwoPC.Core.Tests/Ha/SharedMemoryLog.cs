using TwoPC.Durability;
using TwoPC.Transactions;

namespace TwoPC.Tests.Ha;

/// <summary>
/// The "database" several <see cref="SharedMemoryLog"/>s share: node leases, decisions and heuristics under one lock,
/// with a clock the test moves (the database's clock: leases never read a node's own). A model of the contract of
/// <see cref="ISharedTransactionLog"/> for the coordinator's takeover tests; the PostgreSQL log is tested on its own.
/// </summary>
internal sealed class SharedMemoryStore
{
    public readonly Lock Gate = new();
    public readonly Dictionary<NodeId, (ulong Epoch, DateTimeOffset ExpiresAt, NodeId? AdoptedBy)> Nodes = [];
    public readonly Dictionary<GlobalTransactionId, (ulong Epoch, CommitDecision Decision)> Decisions = [];
    public readonly Dictionary<GlobalTransactionId, HeuristicRecord> Heuristics = [];

    public DateTimeOffset Now { get; set; } = new(2026, 12, 2, 12, 0, 0, TimeSpan.Zero);

    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromSeconds(10);

    public SharedMemoryLog Open() => new(this);

    /// <summary>Moves the database clock past every lease.</summary>
    public void ExpireLeases() => Now += LeaseDuration + TimeSpan.FromSeconds(1);
}

internal sealed class SharedMemoryLog(SharedMemoryStore store) : ISharedTransactionLog
{
    private NodeId _node;
    private ulong _epoch;
    private Exception? _failure;

    public NodeLease? Lease { get; private set; }

    public Exception? Failure => Volatile.Read(ref _failure);

    /// <summary>Renews this node's lease (the PostgreSQL log does it in the background); false when fenced.</summary>
    public bool Renew()
    {
        lock (store.Gate)
        {
            if (store.Nodes.TryGetValue(_node, out var row) && row.Epoch == _epoch)
            {
                store.Nodes[_node] = (_epoch, store.Now + store.LeaseDuration, null);
                Lease = new NodeLease(_node, _epoch, store.Now + store.LeaseDuration);
                return true;
            }

            Fence();
            return false;
        }
    }

    public ValueTask<LogRecoveryState> OpenAsync(CancellationToken cancellationToken) => throw new NotSupportedException("A shared log is opened for a node.");

    public ValueTask<LogRecoveryState> OpenAsync(NodeId node, CancellationToken cancellationToken)
    {
        lock (store.Gate)
        {
            _node = node;
            _epoch = store.Nodes.TryGetValue(node, out var row) ? row.Epoch + 1 : 1;
            store.Nodes[node] = (_epoch, store.Now + store.LeaseDuration, null);
            Lease = new NodeLease(node, _epoch, store.Now + store.LeaseDuration);
            return ValueTask.FromResult(new LogRecoveryState(_epoch, Pending(node), [.. store.Heuristics.Values.Where(h => h.TransactionId.Node == node)], []));
        }
    }

    public ValueTask LogCommitDecisionAsync(CommitDecision decision)
    {
        lock (store.Gate)
        {
            ThrowIfFailed();
            if (store.Nodes[_node].Epoch != _epoch)
            {
                Fence();
                ThrowIfFailed();
            }

            store.Decisions[decision.TransactionId] = (_epoch, decision);
            return ValueTask.CompletedTask;
        }
    }

    public ValueTask LogHeuristicAsync(HeuristicRecord record)
    {
        lock (store.Gate)
        {
            ThrowIfFailed();
            store.Heuristics[record.TransactionId] = record;
            return ValueTask.CompletedTask;
        }
    }

    public void LogEnd(GlobalTransactionId transactionId)
    {
        lock (store.Gate)
        {
            store.Decisions.Remove(transactionId);
            store.Heuristics.Remove(transactionId);
        }
    }

    public ValueTask<IReadOnlyList<NodeLease>> FindTakeoverCandidatesAsync(CancellationToken cancellationToken)
    {
        lock (store.Gate)
        {
            IReadOnlyList<NodeLease> candidates = [.. store.Nodes
                .Where(n => n.Key != _node && n.Value.ExpiresAt < store.Now && (n.Value.AdoptedBy is not { } by || (by != _node && store.Nodes[by].ExpiresAt < store.Now)))
                .Select(n => new NodeLease(n.Key, n.Value.Epoch, n.Value.ExpiresAt))];
            return ValueTask.FromResult(candidates);
        }
    }

    public ValueTask<TakeoverState?> TryTakeOverAsync(NodeId node, CancellationToken cancellationToken)
    {
        lock (store.Gate)
        {
            if (!store.Nodes.TryGetValue(node, out var row) || row.ExpiresAt >= store.Now
                || (row.AdoptedBy is { } by && (by == _node || store.Nodes[by].ExpiresAt >= store.Now)))
            {
                return ValueTask.FromResult<TakeoverState?>(null);
            }

            store.Nodes[node] = (row.Epoch + 1, row.ExpiresAt, _node);
            return ValueTask.FromResult<TakeoverState?>(new TakeoverState(node, row.Epoch + 1, Pending(node), [.. store.Heuristics.Values.Where(h => h.TransactionId.Node == node)]));
        }
    }

    public ValueTask<SharedDecision> FindDecisionAsync(GlobalTransactionId transactionId, CancellationToken cancellationToken)
    {
        lock (store.Gate)
        {
            var answer = store.Decisions.ContainsKey(transactionId) ? SharedDecision.Committed
                : store.Nodes.TryGetValue(transactionId.Node, out var row) && row.Epoch > transactionId.Epoch ? SharedDecision.Absent
                : SharedDecision.Undetermined;
            return ValueTask.FromResult(answer);
        }
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    private List<CommitDecision> Pending(NodeId node) => [.. store.Decisions.Values.Where(d => d.Decision.TransactionId.Node == node).Select(d => d.Decision)];

    private void Fence() => Volatile.Write(ref _failure, _failure ?? new NodeFencedException($"Node {_node} was fenced: its epoch {_epoch} is no longer current."));

    private void ThrowIfFailed()
    {
        if (Failure is { } failure)
        {
            throw failure;
        }
    }
}
