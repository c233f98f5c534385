using TwoPC.Durability;
using TwoPC.Participants;
using TwoPC.Protocol;
using TwoPC.Testing;
using TwoPC.Tests.Protocol;
using TwoPC.Transactions;

namespace TwoPC.Tests.LastResource;

/// <summary>The last-resource commit with test participants: which branch decides, what is logged, and recovery R1/R2.</summary>
public sealed class LastResourceProtocolTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Branches_enlisted_after_the_last_resource_carry_its_hash_and_nothing_is_forced_to_the_log()
    {
        var log = new InMemoryTransactionLog();
        var store = new InMemoryMarkerStore("orders");
        var other = new ScriptedResourceManager("payments");
        await using var coordinator = await CoordinatorFixture.StartAsync(WithLastResource(), log, store, other);
        var tx = coordinator.Begin();
        var last = await tx.EnlistForAsync(store, store.BeginAsync);
        var prepared = tx.Enlist(other.CreateBranch);

        var outcome = await tx.CommitAsync();

        Assert.Equal(OutcomeKind.Committed, outcome.Kind);
        Assert.Equal("1", last.Xid.BranchQualifier);
        var xid = Assert.Single(other.States.Keys);
        Assert.Equal("2.m" + LastResourceXid.Hash("orders").ToString("x8", System.Globalization.CultureInfo.InvariantCulture), xid.BranchQualifier);
        Assert.Equal(TestBranchState.Committed, other.States[xid]);
        Assert.Equal(1, store.MarkerCommits);
        Assert.Equal("committed", last.State);
        Assert.DoesNotContain("decision " + tx.Id, log.Records); // the marker is the decision
        Assert.Contains("end " + tx.Id, log.Records);
        await Eventually.TrueAsync(() => store.Markers.Count == 0, Wait);
    }

    [Fact]
    public async Task A_branch_enlisted_before_the_last_resource_makes_the_transaction_run_the_present_protocol()
    {
        var log = new InMemoryTransactionLog();
        var store = new InMemoryMarkerStore("orders");
        var other = new ScriptedResourceManager("payments");
        await using var coordinator = await CoordinatorFixture.StartAsync(WithLastResource(), log, store, other);
        var tx = coordinator.Begin();
        tx.Enlist(other.CreateBranch);
        var last = await tx.EnlistForAsync(store, store.BeginAsync);

        var outcome = await tx.CommitAsync();

        Assert.Equal(OutcomeKind.Committed, outcome.Kind);
        Assert.Equal(0, store.MarkerCommits);
        Assert.Equal("committed", last.State); // prepared, then committed by XID
        Assert.Contains("decision " + tx.Id, log.Records); // the decision was forced to the log
    }

    [Fact]
    public async Task With_the_option_off_no_branch_qualifier_names_a_last_resource()
    {
        var log = new InMemoryTransactionLog();
        var store = new InMemoryMarkerStore("orders");
        var other = new ScriptedResourceManager("payments");
        var options = CoordinatorFixture.Options();
        options.LastResourceCommit = false;
        await using var coordinator = await CoordinatorFixture.StartAsync(options, log, store, other);
        var tx = coordinator.Begin();
        await tx.EnlistForAsync(store, store.BeginAsync);
        tx.Enlist(other.CreateBranch);
        var xid = Assert.Single(other.States.Keys);

        Assert.False(LastResourceXid.TryGetHash(xid, out _));
        Assert.Equal("2", xid.BranchQualifier);
        await tx.RollbackAsync();
    }

    [Fact]
    public async Task R1_redrives_this_nodes_committed_marker_and_leaves_another_nodes_alone()
    {
        var log = new InMemoryTransactionLog();
        var store = new InMemoryMarkerStore("orders");
        var other = new ScriptedResourceManager("payments");
        var hash = LastResourceXid.Hash("orders");
        var ours = new GlobalTransactionId(NodeId.Parse("node-a"), 1, 7);
        var theirs = new GlobalTransactionId(NodeId.Parse("node-b"), 1, 7);
        var ourXid = LastResourceXid.ForBranch(ours, 2, hash);
        var theirXid = LastResourceXid.ForBranch(theirs, 2, hash);
        other.AddPrepared(ourXid);
        other.AddPrepared(theirXid);
        store.AddMarker(ours, MarkerState.Committed, TwoPhaseCommit.EncodePayload(new CommitDecision(ours, DateTimeOffset.UtcNow, [new LoggedBranch("payments", ourXid, default)])));
        store.AddMarker(theirs, MarkerState.Committed, TwoPhaseCommit.EncodePayload(new CommitDecision(theirs, DateTimeOffset.UtcNow, [new LoggedBranch("payments", theirXid, default)])));

        await using var coordinator = await CoordinatorFixture.StartAsync(WithLastResource(), log, store, other);

        await Eventually.TrueAsync(() => other.States[ourXid] == TestBranchState.Committed && !store.Markers.ContainsKey(ours.ToString()), Wait);
        await coordinator.RecoverAsync();
        Assert.Equal(TestBranchState.Prepared, other.States[theirXid]);
        Assert.True(store.Markers.ContainsKey(theirs.ToString()));
    }

    [Fact]
    public async Task R2_fences_an_orphan_of_a_last_resource_transaction_and_rolls_it_back()
    {
        var log = new InMemoryTransactionLog();
        var store = new InMemoryMarkerStore("orders");
        var other = new ScriptedResourceManager("payments");
        var hash = LastResourceXid.Hash("orders");
        // An earlier epoch of this node (this start's epoch is 1).
        var orphan = LastResourceXid.ForBranch(new GlobalTransactionId(NodeId.Parse("node-a"), 0, 3), 2, hash);
        other.AddPrepared(orphan);

        // Recovery started without R1's marker scan seeing a marker; the fence is what decides.
        await using var coordinator = await CoordinatorFixture.StartAsync(WithLastResource(), log, store, other);
        await Eventually.TrueAsync(
            async () =>
            {
                await coordinator.RecoverAsync();
                return other.States[orphan] == TestBranchState.RolledBack;
            },
            Wait);

        Assert.Equal(MarkerState.Aborted, store.Markers["node-a.0.3"].State);
    }

    private static TransactionCoordinatorOptions WithLastResource()
    {
        var options = CoordinatorFixture.Options();
        options.LastResourceCommit = true;
        return options;
    }
}
