using TwoPC.Durability;
using TwoPC.Participants;
using TwoPC.Protocol;
using TwoPC.Recovery;
using TwoPC.Testing;
using TwoPC.Transactions;
using static TwoPC.Tests.Protocol.CoordinatorFixture;

namespace TwoPC.Tests.Recovery;

public sealed class RecoveryTests
{
    private static readonly NodeId Node = NodeId.Parse("node-a");

    [Fact]
    public async Task A_logged_decision_without_end_is_committed_at_start()
    {
        var log = new InMemoryTransactionLog();
        var a = new ScriptedResourceManager("a");
        var b = new ScriptedResourceManager("b");
        var id = new GlobalTransactionId(Node, 1, 7);
        var xa = Xid.ForBranch(id, 1);
        var xb = Xid.ForBranch(id, 2);
        a.AddPrepared(xa);
        b.AddPrepared(xb);
        await log.OpenAsync(default);
        await log.LogCommitDecisionAsync(new CommitDecision(id, DateTimeOffset.UtcNow, [new LoggedBranch("a", xa, "ra"u8.ToArray()), new LoggedBranch("b", xb, default)]));
        await log.DisposeAsync(); // seeded by hand: closed, as a stopped coordinator leaves it

        await using var coordinator = await StartAsync(log, a, b);
        Assert.Equal(TransactionState.Committed, await WaitForEndAsync(coordinator, id));

        Assert.Equal(TestBranchState.Committed, a.States[xa]);
        Assert.Equal(TestBranchState.Committed, b.States[xb]);
        Assert.Equal("ra", System.Text.Encoding.UTF8.GetString(a.CommittedRecoveryData[xa]));
        Assert.Empty(log.Decisions);
        Assert.Equal(2UL, coordinator.Epoch);
    }

    [Fact]
    public async Task A_decision_naming_an_unregistered_resource_manager_waits_for_it()
    {
        var log = new InMemoryTransactionLog();
        var a = new ScriptedResourceManager("a");
        var late = new ScriptedResourceManager("late");
        var id = new GlobalTransactionId(Node, 1, 1);
        a.AddPrepared(Xid.ForBranch(id, 1));
        late.AddPrepared(Xid.ForBranch(id, 2));
        await log.OpenAsync(default);
        await log.LogCommitDecisionAsync(new CommitDecision(id, DateTimeOffset.UtcNow, [new LoggedBranch("a", Xid.ForBranch(id, 1), default), new LoggedBranch("late", Xid.ForBranch(id, 2), default)]));
        await log.DisposeAsync(); // seeded by hand: closed, as a stopped coordinator leaves it

        await using var coordinator = await StartAsync(log, a);
        await Task.Delay(100);
        Assert.Equal(TransactionState.Committing, coordinator.GetStatus(id).State);
        Assert.Single(log.Decisions);

        coordinator.RegisterResourceManager(late);
        Assert.Equal(TransactionState.Committed, await WaitForEndAsync(coordinator, id));
        Assert.Equal(TestBranchState.Committed, late.States[Xid.ForBranch(id, 2)]);
    }

    [Fact]
    public async Task Orphans_of_this_node_are_rolled_back_others_are_left_alone()
    {
        var log = new InMemoryTransactionLog();
        var a = new ScriptedResourceManager("a");
        var orphan = Xid.ForBranch(new GlobalTransactionId(Node, 0, 3), 1);
        var otherNode = Xid.ForBranch(new GlobalTransactionId(NodeId.Parse("node-b"), 1, 3), 1);
        var foreign = Xid.Parse("00000001_someone-else_1");
        a.AddPrepared(orphan);
        a.AddPrepared(otherNode);
        a.AddPrepared(foreign);

        await using var coordinator = await StartAsync(log, a);

        // The start-up pass only sees the orphan for the first time; the next pass past the safety interval rolls it back.
        await Task.Delay(20);
        await coordinator.RecoverAsync();
        Assert.Equal(TestBranchState.RolledBack, a.States[orphan]);
        Assert.Equal(TestBranchState.Prepared, a.States[otherNode]);
        Assert.Equal(TestBranchState.Prepared, a.States[foreign]);
        var report = await coordinator.RecoverAsync();
        Assert.All(report.Branches, b => Assert.Equal(InDoubtResolution.Foreign, b.Resolution));
        Assert.Equal(2, report.LeftInDoubt);
    }

    [Fact]
    public async Task Item12_a_branch_this_node_never_began_is_a_node_id_conflict_and_is_left_alone()
    {
        // Another coordinator named "node-a" runs on a different log: its transactions carry our node id
        // with an epoch or a sequence we never issued. Presuming them aborted could undo its commits.
        var log = new InMemoryTransactionLog();
        var a = new ScriptedResourceManager("a");
        var laterEpoch = Xid.ForBranch(new GlobalTransactionId(Node, 9, 3), 1);
        var unissuedSequence = Xid.ForBranch(new GlobalTransactionId(Node, 1, 500), 1);
        a.AddPrepared(laterEpoch);
        a.AddPrepared(unissuedSequence);

        await using var coordinator = await StartAsync(log, a);
        Assert.Equal(1UL, coordinator.Epoch);
        await Task.Delay(20);
        var report = await coordinator.RecoverAsync();

        Assert.All(report.Branches, b => Assert.Equal(InDoubtResolution.NodeIdConflict, b.Resolution));
        Assert.Contains(report.Branches, b => b.Detail!.Contains("another coordinator is using node id node-a", StringComparison.Ordinal));
        Assert.Equal(TestBranchState.Prepared, a.States[laterEpoch]);
        Assert.Equal(TestBranchState.Prepared, a.States[unissuedSequence]);
        Assert.Equal(2, report.LeftInDoubt);
    }

    [Fact]
    public async Task An_orphan_younger_than_the_safety_interval_is_left_for_a_later_pass()
    {
        var log = new InMemoryTransactionLog();
        var a = new ScriptedResourceManager("a");
        var orphan = Xid.ForBranch(new GlobalTransactionId(Node, 0, 3), 1);
        a.AddPrepared(orphan);
        var options = Options();
        options.OrphanSafetyInterval = TimeSpan.FromSeconds(3);

        await using var coordinator = await StartAsync(options, log, a);
        Assert.Equal(TestBranchState.Prepared, a.States[orphan]);
        var report = await coordinator.RecoverAsync();
        Assert.Equal(InDoubtResolution.TooYoung, report.Branches.Single().Resolution);
        await Task.Delay(3100);
        report = await coordinator.RecoverAsync();

        Assert.Equal(InDoubtResolution.RolledBack, report.Branches.Single().Resolution);
        Assert.Equal(TestBranchState.RolledBack, a.States[orphan]);
    }

    [Fact]
    public async Task Branches_of_live_transactions_are_not_touched_by_recovery()
    {
        var log = new InMemoryTransactionLog();
        var a = new ScriptedResourceManager("a");
        var release = new TaskCompletionSource();
        var b = new ScriptedResourceManager("b") { Prepare = async (_, _) => { await release.Task; return Vote.Yes(); } };
        await using var coordinator = await StartAsync(log, a, b);

        var tx = BeginWith(coordinator, a, b);
        var commit = tx.CommitAsync();
        await Task.Delay(50);

        // a's branch is prepared and b is still preparing: a pass must not presume it aborted.
        var report = await coordinator.RecoverAsync();
        Assert.Equal(InDoubtResolution.Live, Assert.Single(report.Branches).Resolution);
        release.SetResult();
        Assert.Equal(OutcomeKind.Committed, (await commit).Kind);
    }

    [Fact]
    public async Task A_heuristic_on_record_survives_restart_and_is_not_redriven()
    {
        var log = new InMemoryTransactionLog();
        var a = new ScriptedResourceManager("a");
        var b = new ScriptedResourceManager("b") { CommitAnswer = BranchOutcome.RolledBack };
        var coordinator = await StartAsync(log, a, b);
        var tx = BeginWith(coordinator, a, b);
        Assert.Equal(OutcomeKind.HeuristicMixed, (await tx.CommitAsync()).Kind);
        await coordinator.DisposeAsync();

        var commitsBefore = b.Calls.Count(c => c.StartsWith("commit", StringComparison.Ordinal));
        await using var restarted = await StartAsync(log, a, b);
        Assert.Equal(TransactionState.Heuristic, restarted.GetStatus(tx.Id).State);
        Assert.Single(restarted.GetHeuristics());
        Assert.Equal(commitsBefore, b.Calls.Count(c => c.StartsWith("commit", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task A_failing_resource_scan_is_reported_and_does_not_stop_the_pass()
    {
        var log = new InMemoryTransactionLog();
        var broken = new BrokenResourceManager();
        var a = new ScriptedResourceManager("a");
        var orphan = Xid.ForBranch(new GlobalTransactionId(Node, 0, 3), 1);
        a.AddPrepared(orphan);

        await using var coordinator = await StartAsync(log, broken, a);
        await Task.Delay(20);
        var report = await coordinator.RecoverAsync();

        Assert.Equal(["broken"], report.FailedResourceManagers);
        Assert.Equal(TestBranchState.RolledBack, a.States[orphan]);
    }

    private sealed class BrokenResourceManager : IResourceManager
    {
        public string Name => "broken";

        public ValueTask<BranchOutcome> CommitAsync(Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken) => throw new IOException("down");

        public ValueTask<BranchOutcome> RollbackAsync(Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken) => throw new IOException("down");

        public ValueTask<IReadOnlyCollection<InDoubtBranch>> RecoverAsync(CancellationToken cancellationToken) => throw new IOException("down");

        public ValueTask ForgetAsync(Xid xid, CancellationToken cancellationToken) => throw new IOException("down");
    }
}
