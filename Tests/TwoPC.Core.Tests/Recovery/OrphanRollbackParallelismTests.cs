using System.Collections.Concurrent;
using TwoPC.Participants;
using TwoPC.Recovery;
using TwoPC.Testing;
using TwoPC.Transactions;
using static TwoPC.Tests.Protocol.CoordinatorFixture;

namespace TwoPC.Tests.Recovery;

/// <summary>A recovery pass rolls orphans back several at a time, never more than its bound, and one failure stops no other.</summary>
public sealed class OrphanRollbackParallelismTests
{
    private static readonly NodeId Node = NodeId.Parse("node-a");

    [Fact]
    public async Task Orphans_are_rolled_back_concurrently_up_to_the_bound_and_a_failing_one_stops_none_of_the_others()
    {
        const int Orphans = 40;
        var bound = RecoveryManager.DefaultOrphanRollbackParallelism;
        var rm = new ConcurrentRollbacks("a", bound);
        await using var coordinator = await StartAsync(new InMemoryTransactionLog(), rm);

        // Orphans of an earlier epoch, prepared long ago: the next pass rolls every one of them back.
        var xids = Enumerable.Range(1, Orphans).Select(i => Xid.ForBranch(new GlobalTransactionId(Node, 0, (ulong)i), 1)).ToList();
        var failing = xids[7];
        rm.Fail(failing);
        foreach (var xid in xids)
        {
            rm.Prepared[xid] = true;
        }

        var report = await coordinator.RecoverAsync();

        Assert.Equal(bound, rm.MaxInFlight);
        Assert.Equal(Orphans, report.Branches.Count);
        Assert.All(report.Branches.Where(b => b.Xid != failing), b => Assert.Equal(InDoubtResolution.RolledBack, b.Resolution));
        var failed = Assert.Single(report.Branches, b => b.Xid == failing);
        Assert.Equal(InDoubtResolution.Failed, failed.Resolution);
        Assert.Contains("rolling back the orphan failed", failed.Detail, StringComparison.Ordinal);
        Assert.Equal([failing], rm.Prepared.Keys);
    }

    /// <summary>
    /// Holds every rollback until <c>bound</c> are in flight at once (or, if that never happens, until 2 s passed), so
    /// the highest number in flight is exactly the bound when the pass honours it and runs that many at a time.
    /// </summary>
    private sealed class ConcurrentRollbacks(string name, int bound) : IResourceManager
    {
        private readonly InFlightGate _gate = new(now => now >= bound, TimeSpan.FromSeconds(2));

        public string Name => name;

        public ConcurrentDictionary<Xid, bool> Prepared { get; } = new();

        public int MaxInFlight => _gate.MaxInFlight;

        public void Fail(Xid xid) => _gate.Fail(xid);

        public ValueTask<BranchOutcome> CommitAsync(Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken) =>
            throw new InvalidOperationException("no orphan is committed");

        public ValueTask<BranchOutcome> RollbackAsync(Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken) =>
            _gate.PassAsync(xid, () =>
            {
                Prepared.TryRemove(xid, out _);
                return BranchOutcome.RolledBack;
            }, cancellationToken);

        public ValueTask<IReadOnlyCollection<InDoubtBranch>> RecoverAsync(CancellationToken cancellationToken) =>
            ValueTask.FromResult<IReadOnlyCollection<InDoubtBranch>>([.. Prepared.Keys.Select(x => new InDoubtBranch(x, DateTimeOffset.UtcNow.AddHours(-1)))]);

        public ValueTask ForgetAsync(Xid xid, CancellationToken cancellationToken) => ValueTask.CompletedTask;
    }
}
