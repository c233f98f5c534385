using System.Collections.Concurrent;
using TwoPC.Durability;
using TwoPC.Participants;
using TwoPC.Protocol;
using TwoPC.Testing;
using TwoPC.Transactions;
using static TwoPC.Tests.Protocol.CoordinatorFixture;

namespace TwoPC.Tests.Recovery;

/// <summary>
/// Re-driving logged decisions after a restart: every decision is listed as committing at once, the commit calls go out
/// at most <see cref="TransactionCoordinator.DefaultRedriveParallelism"/> at a time per resource manager, and a failing
/// branch stops none of the others.
/// </summary>
public sealed class RedriveParallelismTests
{
    private static readonly NodeId Node = NodeId.Parse("node-a");

    [Fact]
    public async Task Logged_decisions_are_redriven_up_to_the_bound_per_resource_manager_and_a_failing_branch_stops_none_of_the_others()
    {
        const int Decisions = 200;
        var bound = TransactionCoordinator.DefaultRedriveParallelism;
        var a = new ConcurrentCommits("a", bound);
        var b = new ConcurrentCommits("b", bound);
        var log = new InMemoryTransactionLog();
        await log.OpenAsync(default);
        var ids = new List<GlobalTransactionId>();
        for (var i = 1; i <= Decisions; i++)
        {
            var id = new GlobalTransactionId(Node, 1, (ulong)i);
            ids.Add(id);
            a.Prepared[Xid.ForBranch(id, 1)] = true;
            b.Prepared[Xid.ForBranch(id, 2)] = true;
            await log.LogCommitDecisionAsync(new CommitDecision(id, DateTimeOffset.UtcNow, [new LoggedBranch("a", Xid.ForBranch(id, 1), default), new LoggedBranch("b", Xid.ForBranch(id, 2), default)]));
        }

        await log.DisposeAsync(); // seeded by hand: closed, as a stopped coordinator leaves it
        var failing = ids[17];
        a.Fail(Xid.ForBranch(failing, 1));

        await using var coordinator = await StartAsync(log, a, b);

        // Queued or running, every decision is live from the start: status says Committing (or already Committed), and
        // the first recovery pass, which saw every branch prepared, rolled none of them back.
        Assert.All(ids, id => Assert.Contains(coordinator.GetStatus(id).State, new[] { TransactionState.Committing, TransactionState.Committed }));
        Assert.Empty(a.RolledBack);
        Assert.Empty(b.RolledBack);

        foreach (var id in ids.Where(id => id != failing))
        {
            Assert.Equal(TransactionState.Committed, await WaitForEndAsync(coordinator, id));
        }

        Assert.Equal(bound, a.MaxInFlight);
        Assert.Equal(bound, b.MaxInFlight);
        Assert.Equal(TransactionState.Committing, coordinator.GetStatus(failing).State);
        Assert.Equal([Xid.ForBranch(failing, 1)], a.Prepared.Keys);
        Assert.Empty(b.Prepared);

        a.Heal();
        Assert.Equal(TransactionState.Committed, await WaitForEndAsync(coordinator, failing));
        Assert.Empty(a.Prepared);
        Assert.Empty(a.RolledBack);
    }

    [Fact]
    public async Task Redrive_called_again_while_running_skips_a_decision_already_being_driven()
    {
        var a = new ConcurrentCommits("a", bound: 1);
        var log = new InMemoryTransactionLog();
        await using var coordinator = await StartAsync(log, a);
        var id = new GlobalTransactionId(NodeId.Parse("node-b"), 1, 1);
        var xid = Xid.ForBranch(id, 1);
        a.Prepared[xid] = true;
        a.Fail(xid);
        var decision = new CommitDecision(id, DateTimeOffset.UtcNow, [new LoggedBranch("a", xid, default)]);

        Assert.Equal(1, coordinator.Redrive([decision]));
        Assert.Equal(0, coordinator.Redrive([decision]));
        Assert.Equal(TransactionState.Committing, coordinator.GetStatus(id).State);

        a.Heal();
        Assert.Equal(TransactionState.Committed, await WaitForEndAsync(coordinator, id));
        Assert.Equal(1, a.Commits[xid]);
    }

    /// <summary>
    /// Holds every commit until more than <c>bound</c> are in flight at once or, if that never happens, until 1 s passed:
    /// the highest number in flight is exactly the bound when the re-drive honours it and runs that many at a time, and
    /// above it when it does not.
    /// </summary>
    private sealed class ConcurrentCommits(string name, int bound) : IResourceManager
    {
        private readonly InFlightGate _gate = new(now => now > bound, TimeSpan.FromSeconds(1));

        public string Name => name;

        public ConcurrentDictionary<Xid, bool> Prepared { get; } = new();

        public ConcurrentDictionary<Xid, int> Commits { get; } = new();

        public ConcurrentBag<Xid> RolledBack { get; } = [];

        public int MaxInFlight => _gate.MaxInFlight;

        public void Fail(Xid xid) => _gate.Fail(xid);

        public void Heal() => _gate.Heal();

        public ValueTask<BranchOutcome> CommitAsync(Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken) =>
            _gate.PassAsync(xid, () =>
            {
                Prepared.TryRemove(xid, out _);
                Commits.AddOrUpdate(xid, 1, static (_, n) => n + 1);
                return BranchOutcome.Committed;
            }, cancellationToken);

        public ValueTask<BranchOutcome> RollbackAsync(Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken)
        {
            RolledBack.Add(xid);
            Prepared.TryRemove(xid, out _);
            return ValueTask.FromResult(BranchOutcome.RolledBack);
        }

        public ValueTask<IReadOnlyCollection<InDoubtBranch>> RecoverAsync(CancellationToken cancellationToken) =>
            ValueTask.FromResult<IReadOnlyCollection<InDoubtBranch>>([.. Prepared.Keys.Select(x => new InDoubtBranch(x, DateTimeOffset.UtcNow.AddHours(-1)))]);

        public ValueTask ForgetAsync(Xid xid, CancellationToken cancellationToken) => ValueTask.CompletedTask;
    }
}
