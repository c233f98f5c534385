using System.Collections.Concurrent;
using TwoPC.Participants;
using TwoPC.Transactions;

namespace TwoPC.Tests.LastResource;

/// <summary>
/// A commit-markable test resource manager: its branches commit in one phase with a marker kept in memory, keyed by
/// the transaction id with the store's rules (the first marker for a transaction wins; a fence inserts 'A').
/// </summary>
internal sealed class InMemoryMarkerStore(string name) : IResourceManager, ICommitMarkerStore
{
    private readonly ConcurrentDictionary<string, (MarkerState State, byte[] Payload)> _markers = new(StringComparer.Ordinal);
    private int _markerCommits;

    public string Name { get; } = name;

    public bool CommitsAtomically => true;

    public int MarkerCommits => Volatile.Read(ref _markerCommits);

    public IReadOnlyDictionary<string, (MarkerState State, byte[] Payload)> Markers => _markers;

    public ConcurrentBag<Branch> Branches { get; } = [];

    public void AddMarker(GlobalTransactionId id, MarkerState state, ReadOnlyMemory<byte> payload) => _markers[id.ToString()] = (state, payload.ToArray());

    public ValueTask<Branch> BeginAsync(Xid xid, CancellationToken cancellationToken)
    {
        var branch = new Branch(this, xid);
        Branches.Add(branch);
        return ValueTask.FromResult(branch);
    }

    public ValueTask<MarkerCommitOutcome> CommitWithMarkerAsync(ITransactionBranch branch, GlobalTransactionId transactionId, DateTimeOffset deadline, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        var ours = (Branch)branch;
        Interlocked.Increment(ref _markerCommits);
        if (!_markers.TryAdd(transactionId.ToString(), (MarkerState.Committed, payload.ToArray())))
        {
            ours.State = "rolled back";
            return ValueTask.FromResult(MarkerCommitOutcome.Refused("fenced"));
        }

        ours.State = "committed";
        return ValueTask.FromResult(MarkerCommitOutcome.Success);
    }

    /// <summary>When set, every fence throws it (the database cannot be reached).</summary>
    public Exception? FenceFailure { get; set; }

    public ValueTask<MarkerState> FenceAsync(GlobalTransactionId transactionId, CancellationToken cancellationToken) =>
        FenceFailure is { } failure
            ? ValueTask.FromException<MarkerState>(failure)
            : ValueTask.FromResult(_markers.GetOrAdd(transactionId.ToString(), (MarkerState.Aborted, [])).State);

    public ValueTask<IReadOnlyList<CommitMarker>> ReadCommittedMarkersAsync(string? after, int maxCount, CancellationToken cancellationToken) =>
        ValueTask.FromResult<IReadOnlyList<CommitMarker>>([.. _markers
            .Where(m => m.Value.State == MarkerState.Committed && string.CompareOrdinal(m.Key, after ?? string.Empty) > 0)
            .OrderBy(m => m.Key, StringComparer.Ordinal)
            .Take(maxCount)
            .Select(m => new CommitMarker(GlobalTransactionId.Parse(m.Key), m.Value.Payload))]);

    public ValueTask DeleteMarkersAsync(IReadOnlyCollection<GlobalTransactionId> transactionIds, CancellationToken cancellationToken)
    {
        foreach (var id in transactionIds)
        {
            if (_markers.TryGetValue(id.ToString(), out var marker) && marker.State == MarkerState.Committed)
            {
                _markers.TryRemove(id.ToString(), out _);
            }
        }

        return ValueTask.CompletedTask;
    }

    /// <summary>Phase 2 of a branch that was prepared (the present protocol).</summary>
    public ValueTask<BranchOutcome> CommitAsync(Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken)
    {
        foreach (var branch in Branches.Where(b => b.Xid == xid))
        {
            branch.State = "committed";
        }

        return ValueTask.FromResult(BranchOutcome.Committed);
    }

    public ValueTask<BranchOutcome> RollbackAsync(Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken) => ValueTask.FromResult(BranchOutcome.RolledBack);

    public ValueTask<IReadOnlyCollection<InDoubtBranch>> RecoverAsync(CancellationToken cancellationToken) => ValueTask.FromResult<IReadOnlyCollection<InDoubtBranch>>([]);

    public ValueTask ForgetAsync(Xid xid, CancellationToken cancellationToken) => ValueTask.CompletedTask;

    internal sealed class Branch(InMemoryMarkerStore store, Xid xid) : ITransactionBranch
    {
        public Xid Xid { get; } = xid;

        public string State { get; set; } = "active";

        public IResourceManager ResourceManager => store;

        public ValueTask<Vote> PrepareAsync(CancellationToken cancellationToken)
        {
            State = "prepared";
            return ValueTask.FromResult(Vote.Yes(default));
        }

        public ValueTask<BranchOutcome> CommitOnePhaseAsync(CancellationToken cancellationToken)
        {
            State = "committed";
            return ValueTask.FromResult(BranchOutcome.Committed);
        }

        public ValueTask<BranchOutcome> RollbackAsync(CancellationToken cancellationToken)
        {
            State = State == "committed" ? State : "rolled back";
            return ValueTask.FromResult(BranchOutcome.RolledBack);
        }
    }
}
