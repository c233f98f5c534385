using System.Text;
using TwoPC.Durability;
using TwoPC.Participants;
using TwoPC.Protocol;
using TwoPC.Recovery;
using TwoPC.Testing;
using TwoPC.Transactions;
using static TwoPC.Tests.Protocol.CoordinatorFixture;

namespace TwoPC.Tests.LastResource;

/// <summary>
/// The operator's hands on last-resource transactions: a forced action on a branch with no record here is judged by the
/// commit marker (fenced first), and a heuristic outcome's marker is never re-driven and is deleted when forgotten.
/// </summary>
public sealed class LastResourceOperatorTests
{
    private static readonly NodeId Node = NodeId.Parse("node-a");
    private static readonly uint OrdersHash = LastResourceXid.Hash("orders");

    [Fact]
    public async Task A_committed_marker_refuses_a_forced_rollback_and_a_forced_commit_carries_the_markers_recovery_data()
    {
        var store = new InMemoryMarkerStore("orders");
        var payments = new ScriptedResourceManager("payments");
        // Another node's transaction: R1 leaves its marker alone and this coordinator has no record of it.
        var id = new GlobalTransactionId(NodeId.Parse("node-gone"), 3, 12);
        var xid = LastResourceXid.ForBranch(id, 2, OrdersHash);
        payments.AddPrepared(xid);
        store.AddMarker(id, MarkerState.Committed, Payload(id, xid, "callback"));
        // Neighbours in the markers' text order, so the payload is read from this transaction's marker and no other.
        foreach (var sequence in new ulong[] { 11, 119, 120 })
        {
            var neighbour = new GlobalTransactionId(id.Node, id.Epoch, sequence);
            store.AddMarker(neighbour, MarkerState.Committed, Payload(neighbour, xid, "wrong"));
        }

        await using var coordinator = await StartAsync(Options(), new InMemoryTransactionLog(), store, payments);

        var rollback = await coordinator.ForceRollbackBranchAsync("payments", xid);
        Assert.Equal(ForcedBranchStatus.Refused, rollback.Status);
        Assert.Contains("holds its commit marker ('C')", rollback.Message, StringComparison.Ordinal);
        Assert.Equal(TestBranchState.Prepared, payments.States[xid]);
        Assert.DoesNotContain(payments.Calls, c => c.StartsWith("rollback", StringComparison.Ordinal));

        var commit = await coordinator.ForceCommitBranchAsync("payments", xid);
        Assert.True(commit.Succeeded, commit.Message);
        Assert.Equal(TestBranchState.Committed, payments.States[xid]);
        Assert.Equal("callback", Encoding.UTF8.GetString(payments.CommittedRecoveryData[xid]));
        Assert.Equal(MarkerState.Committed, store.Markers[id.ToString()].State);
    }

    [Fact]
    public async Task Without_a_marker_the_fence_records_the_abort_a_forced_rollback_goes_ahead_and_a_commit_is_refused_even_with_the_override()
    {
        var store = new InMemoryMarkerStore("orders");
        var payments = new ScriptedResourceManager("payments");
        var id = new GlobalTransactionId(Node, 0, 3); // an earlier epoch of this node: handed out, no record
        var (x2, x3) = (LastResourceXid.ForBranch(id, 2, OrdersHash), LastResourceXid.ForBranch(id, 3, OrdersHash));
        payments.AddPrepared(x2);
        payments.AddPrepared(x3);
        await using var coordinator = await StartAsync(TooYoungForRecovery(), new InMemoryTransactionLog(), store, payments);

        var commit = await coordinator.ForceCommitBranchAsync("payments", x2, overridePresumedAbort: true);
        Assert.Equal(ForcedBranchStatus.Refused, commit.Status);
        Assert.Contains("fenced as aborted", commit.Message, StringComparison.Ordinal);
        Assert.Equal(MarkerState.Aborted, store.Markers[id.ToString()].State); // the fence is recorded: no 'C' can follow
        Assert.Equal(TestBranchState.Prepared, payments.States[x2]);
        Assert.DoesNotContain(payments.Calls, c => c.StartsWith("commit", StringComparison.Ordinal));

        var rollback = await coordinator.ForceRollbackBranchAsync("payments", x3);
        Assert.True(rollback.Succeeded, rollback.Message);
        Assert.Equal(TestBranchState.RolledBack, payments.States[x3]);
    }

    [Fact]
    public async Task An_unreachable_last_resource_fails_both_forced_actions_and_touches_nothing()
    {
        var store = new InMemoryMarkerStore("orders") { FenceFailure = new IOException("connection refused") };
        var payments = new ScriptedResourceManager("payments");
        var xid = LastResourceXid.ForBranch(new GlobalTransactionId(Node, 0, 5), 2, OrdersHash);
        payments.AddPrepared(xid);
        await using var coordinator = await StartAsync(TooYoungForRecovery(), new InMemoryTransactionLog(), store, payments);

        var rollback = await coordinator.ForceRollbackBranchAsync("payments", xid);
        var commit = await coordinator.ForceCommitBranchAsync("payments", xid, overridePresumedAbort: true);

        foreach (var result in new[] { rollback, commit })
        {
            Assert.Equal(ForcedBranchStatus.Failed, result.Status);
            Assert.Contains("fencing it there failed", result.Message, StringComparison.Ordinal);
            Assert.Contains("connection refused", result.Message, StringComparison.Ordinal);
        }

        Assert.Equal(TestBranchState.Prepared, payments.States[xid]);
        Assert.DoesNotContain(payments.Calls, c => c.StartsWith("rollback", StringComparison.Ordinal) || c.StartsWith("commit", StringComparison.Ordinal));
        Assert.Empty(store.Markers);
    }

    [Fact]
    public async Task A_last_resource_that_is_not_registered_refuses_both_forced_actions()
    {
        var store = new InMemoryMarkerStore("orders");
        var payments = new ScriptedResourceManager("payments");
        var xid = LastResourceXid.ForBranch(new GlobalTransactionId(Node, 0, 6), 2, LastResourceXid.Hash("ledger"));
        payments.AddPrepared(xid);
        await using var coordinator = await StartAsync(TooYoungForRecovery(), new InMemoryTransactionLog(), store, payments);

        var rollback = await coordinator.ForceRollbackBranchAsync("payments", xid);
        var commit = await coordinator.ForceCommitBranchAsync("payments", xid, overridePresumedAbort: true);

        foreach (var result in new[] { rollback, commit })
        {
            Assert.Equal(ForcedBranchStatus.Refused, result.Status);
            Assert.Contains("no registered commit-markable resource manager has that name", result.Message, StringComparison.Ordinal);
        }

        Assert.Equal(TestBranchState.Prepared, payments.States[xid]);
        Assert.Empty(store.Markers);
    }

    [Fact]
    public async Task A_live_last_resource_transaction_is_refused_by_its_record_before_any_fence()
    {
        var store = new InMemoryMarkerStore("orders");
        var payments = new ScriptedResourceManager("payments");
        await using var coordinator = await StartAsync(WithLastResource(), new InMemoryTransactionLog(), store, payments);
        var tx = coordinator.Begin();
        await tx.EnlistForAsync(store, store.BeginAsync);
        tx.Enlist(payments.CreateBranch);
        var xid = Assert.Single(payments.States.Keys);

        var rollback = await coordinator.ForceRollbackBranchAsync("payments", xid);

        Assert.Equal(ForcedBranchStatus.Refused, rollback.Status);
        Assert.Contains("Active", rollback.Message, StringComparison.Ordinal);
        Assert.Empty(store.Markers); // a fence would have aborted the transaction this process is driving
        Assert.Equal(OutcomeKind.Committed, (await tx.CommitAsync()).Kind);
    }

    [Fact]
    public async Task A_heuristic_on_record_keeps_its_marker_and_recovery_never_redrives_it_even_after_a_restart()
    {
        var log = new InMemoryTransactionLog();
        var store = new InMemoryMarkerStore("orders");
        var payments = new ScriptedResourceManager("payments") { CommitAnswer = BranchOutcome.RolledBack };
        var coordinator = await StartAsync(WithLastResource(), log, store, payments);
        var id = await CommitHeuristicAsync(coordinator, store, payments);
        await coordinator.RecoverAsync();
        await coordinator.StopAsync(); // waits for anything recovery re-drove
        await coordinator.DisposeAsync();

        var restarted = await StartAsync(WithLastResource(), log, store, payments);
        await restarted.RecoverAsync();
        await restarted.StopAsync();
        await restarted.DisposeAsync();

        Assert.Equal(1, payments.Calls.Count(c => c.StartsWith("commit", StringComparison.Ordinal)));
        Assert.Single(log.Records, r => r == "heuristic " + id);
        Assert.Equal(MarkerState.Committed, store.Markers[id.ToString()].State); // the operator owns it
    }

    [Fact]
    public async Task Forgetting_a_heuristic_deletes_its_marker_so_recovery_does_not_drive_it_again()
    {
        var log = new InMemoryTransactionLog();
        var store = new InMemoryMarkerStore("orders");
        var payments = new ScriptedResourceManager("payments") { CommitAnswer = BranchOutcome.RolledBack };
        var coordinator = await StartAsync(WithLastResource(), log, store, payments);
        var id = await CommitHeuristicAsync(coordinator, store, payments);

        Assert.True(await coordinator.ForgetHeuristicAsync(id));

        Assert.False(store.Markers.ContainsKey(id.ToString()));
        Assert.Empty(coordinator.GetHeuristics());
        await coordinator.RecoverAsync();
        await coordinator.StopAsync();
        await coordinator.DisposeAsync();
        Assert.Equal(1, payments.Calls.Count(c => c.StartsWith("commit", StringComparison.Ordinal)));
        Assert.Single(log.Records, r => r == "heuristic " + id);
        Assert.Contains("end " + id, log.Records);
        Assert.Empty(log.Heuristics);
    }

    [Fact]
    public async Task Forgetting_a_heuristic_whose_last_resource_is_not_registered_is_refused_and_keeps_the_record()
    {
        var log = new InMemoryTransactionLog();
        var id = new GlobalTransactionId(Node, 0, 8);
        var xid = LastResourceXid.ForBranch(id, 2, LastResourceXid.Hash("ledger"));
        await log.OpenAsync(default);
        await log.LogHeuristicAsync(new HeuristicRecord(id, DateTimeOffset.UnixEpoch, OutcomeKind.HeuristicRollback, "seeded", [new HeuristicBranch("payments", xid, BranchOutcome.RolledBack)]));
        await log.DisposeAsync(); // seeded by hand: closed, as a stopped coordinator leaves it
        var payments = new ScriptedResourceManager("payments");
        await using var coordinator = await StartAsync(WithLastResource(), log, new InMemoryMarkerStore("orders"), payments);

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => coordinator.ForgetHeuristicAsync(id));

        Assert.Contains("no registered commit-markable resource manager has that name", error.Message, StringComparison.Ordinal);
        Assert.Single(coordinator.GetHeuristics());
        Assert.DoesNotContain(payments.Calls, c => c.StartsWith("forget", StringComparison.Ordinal));
        Assert.DoesNotContain("end " + id, log.Records);
    }

    /// <summary>A last-resource transaction whose prepared branch answers rolled back after the marker committed: a heuristic.</summary>
    private static async Task<GlobalTransactionId> CommitHeuristicAsync(TransactionCoordinator coordinator, InMemoryMarkerStore store, ScriptedResourceManager payments)
    {
        var tx = coordinator.Begin();
        await tx.EnlistForAsync(store, store.BeginAsync);
        tx.Enlist(payments.CreateBranch);
        var outcome = await tx.CommitAsync();
        Assert.True(outcome.IsHeuristic, outcome.ToString());
        Assert.Equal(1, store.MarkerCommits);
        Assert.Equal(MarkerState.Committed, store.Markers[tx.Id.ToString()].State); // released, not deleted
        return tx.Id;
    }

    private static ReadOnlyMemory<byte> Payload(GlobalTransactionId id, Xid xid, string recoveryData) =>
        TwoPhaseCommit.EncodePayload(new CommitDecision(id, DateTimeOffset.UnixEpoch, [new LoggedBranch("payments", xid, Encoding.UTF8.GetBytes(recoveryData))]));

    private static TransactionCoordinatorOptions WithLastResource()
    {
        var options = Options();
        options.LastResourceCommit = true;
        return options;
    }

    /// <summary>Recovery leaves this node's orphans alone (too young), so only the operator acts on them.</summary>
    private static TransactionCoordinatorOptions TooYoungForRecovery()
    {
        var options = WithLastResource();
        options.OrphanSafetyInterval = TimeSpan.FromHours(1);
        return options;
    }
}
