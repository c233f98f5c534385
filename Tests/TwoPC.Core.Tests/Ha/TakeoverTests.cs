using TwoPC.Durability;
using TwoPC.Participants;
using TwoPC.Protocol;
using TwoPC.Recovery;
using TwoPC.Testing;
using TwoPC.Transactions;
using static TwoPC.Tests.Protocol.CoordinatorFixture;

namespace TwoPC.Tests.Ha;

/// <summary>
/// A live coordinator node takes over a node whose lease expired on a shared log, and does for it what its restart would.
/// The shared log here is <see cref="SharedMemoryStore"/>, a model of the contract; the same steps run with real processes
/// on the PostgreSQL log in the HA process tests.
/// </summary>
public sealed class TakeoverTests
{
    private readonly SharedMemoryStore _store = new();
    private readonly ScriptedResourceManager _orders = new("orders");
    private readonly ScriptedResourceManager _payments = new("payments");

    [Fact]
    public async Task A_decision_logged_by_a_node_that_died_is_committed_by_the_node_that_takes_it_over()
    {
        var stuck = new TaskCompletionSource();
        var (a, _) = await StartNodeAsync("node-a", (step, _, _) => step == ProtocolStep.DecisionLogged ? new ValueTask(stuck.Task) : default);
        var (b, logB) = await StartNodeAsync("node-b");
        var tx = BeginWith(a, _orders, _payments);
        var commit = tx.CommitAsync(); // decided, then "dies" before phase 2
        await Until(() => _store.Decisions.ContainsKey(tx.Id));

        Assert.Equal(TransactionState.Committing, (await b.GetStatusAsync(tx.Id)).State);
        Assert.Equal(0, await b.TakeOverExpiredNodesAsync(logB, default)); // node-a's lease is live: nobody may touch it

        _store.ExpireLeases();
        logB.Renew();
        Assert.Equal(1, await b.TakeOverExpiredNodesAsync(logB, default));

        Assert.Equal(TransactionState.Committed, await WaitForEndAsync(b, tx.Id));
        Assert.All(_orders.States.Values.Concat(_payments.States.Values), s => Assert.Equal(TestBranchState.Committed, s));
        Assert.Empty(_store.Decisions); // END logged by the taker
        Assert.True(b.AdoptedNodes.ContainsKey(NodeId.Parse("node-a")));

        stuck.SetResult(); // the "dead" node wakes up: its phase 2 only repeats idempotent commits
        Assert.Equal(OutcomeKind.Committed, (await commit).Kind);
        await a.DisposeAsync();
        await b.DisposeAsync();
    }

    [Fact]
    public async Task Branches_prepared_by_a_node_that_died_before_deciding_are_rolled_back_and_its_late_decision_is_refused()
    {
        var paused = new TaskCompletionSource();
        var (a, _) = await StartNodeAsync("node-a", (step, _, k) => step == ProtocolStep.AfterPrepare && k == 2 ? new ValueTask(paused.Task) : default);
        var (b, logB) = await StartNodeAsync("node-b");
        var tx = BeginWith(a, _orders, _payments);
        var commit = tx.CommitAsync(); // both branches prepared, then paused (GC, SIGSTOP) before the decision
        await Until(() => _orders.States.Values.Concat(_payments.States.Values).Count(s => s == TestBranchState.Prepared) == 2);

        Assert.Equal(TransactionState.Active, (await b.GetStatusAsync(tx.Id)).State); // node-a may still decide

        _store.ExpireLeases();
        logB.Renew();
        Assert.Equal(1, await b.TakeOverExpiredNodesAsync(logB, default));

        // Fenced, so presumed abort holds at once: rolled back by the taker's immediate pass, no safety interval.
        Assert.All(_orders.States.Values.Concat(_payments.States.Values), s => Assert.Equal(TestBranchState.RolledBack, s));
        Assert.Equal(TransactionState.Unknown, (await b.GetStatusAsync(tx.Id)).State);

        paused.SetResult(); // node-a resumes and tries to log its decision
        var outcome = await commit;
        Assert.Equal(OutcomeKind.RolledBack, outcome.Kind);
        Assert.Empty(_store.Decisions);
        Assert.True(a.IsFenced);
        Assert.Throws<TransactionLogFailedException>(() => a.Begin());
        Assert.All(_orders.States.Values.Concat(_payments.States.Values), s => Assert.Equal(TestBranchState.RolledBack, s));
        await a.DisposeAsync();
        await b.DisposeAsync();
    }

    [Fact]
    public async Task A_node_restarted_after_a_takeover_keeps_its_new_transactions_the_taker_leaves_them_alone()
    {
        var (a, _) = await StartNodeAsync("node-a");
        await a.DisposeAsync(); // stopped; its lease runs out
        var (b, logB) = await StartNodeAsync("node-b");
        _store.ExpireLeases();
        logB.Renew();
        Assert.Equal(1, await b.TakeOverExpiredNodesAsync(logB, default));
        var fenced = b.AdoptedNodes[NodeId.Parse("node-a")];

        var paused = new TaskCompletionSource();
        var (restarted, _) = await StartNodeAsync("node-a", (step, _, k) => step == ProtocolStep.AfterPrepare && k == 2 ? new ValueTask(paused.Task) : default);
        Assert.True(restarted.Epoch > fenced);
        var tx = BeginWith(restarted, _orders, _payments);
        var commit = tx.CommitAsync();
        await Until(() => _orders.States.Values.Concat(_payments.States.Values).Count(s => s == TestBranchState.Prepared) == 2);

        var report = await b.RecoverAsync();
        Assert.All(report.Branches, r => Assert.Equal(InDoubtResolution.Foreign, r.Resolution));
        Assert.All(_orders.States.Values, s => Assert.Equal(TestBranchState.Prepared, s));

        paused.SetResult();
        Assert.Equal(OutcomeKind.Committed, (await commit).Kind);
        await restarted.DisposeAsync();
        await b.DisposeAsync();
    }

    [Fact]
    public async Task A_node_adopted_by_a_node_that_died_too_is_taken_over_again()
    {
        var stuck = new TaskCompletionSource();
        var (a, _) = await StartNodeAsync("node-a", (step, _, _) => step == ProtocolStep.DecisionLogged ? new ValueTask(stuck.Task) : default);
        var tx = BeginWith(a, _orders, _payments);
        var commit = tx.CommitAsync();
        await Until(() => _store.Decisions.ContainsKey(tx.Id));

        // node-b takes node-a over but dies before phase 2 of node-a's decision can run.
        var bStuck = new TaskCompletionSource();
        _payments.BeforeCommit = (_, _) => bStuck.Task;
        var (b, logB) = await StartNodeAsync("node-b");
        _store.ExpireLeases();
        logB.Renew();
        Assert.Equal(1, await b.TakeOverExpiredNodesAsync(logB, default));

        var (c, logC) = await StartNodeAsync("node-c");
        Assert.Empty(await logC.FindTakeoverCandidatesAsync(default)); // node-a is adopted by a live node
        _store.ExpireLeases();
        logC.Renew();
        var candidates = await logC.FindTakeoverCandidatesAsync(default);
        Assert.Equal(["node-a", "node-b"], candidates.Select(l => l.Node.Value).Order());

        _payments.BeforeCommit = null;
        Assert.Equal(2, await c.TakeOverExpiredNodesAsync(logC, default));
        Assert.Equal(TransactionState.Committed, await WaitForEndAsync(c, tx.Id));
        Assert.All(_orders.States.Values.Concat(_payments.States.Values), s => Assert.Equal(TestBranchState.Committed, s));

        bStuck.SetResult();
        stuck.SetResult();
        await commit;
        await a.DisposeAsync();
        await b.DisposeAsync();
        await c.DisposeAsync();
    }

    private async Task<(TransactionCoordinator Node, SharedMemoryLog Log)> StartNodeAsync(string node, Func<ProtocolStep, GlobalTransactionId, int, ValueTask>? hook = null)
    {
        var options = Options(node);
        options.StepHook = hook;
        options.TakeoverInterval = TimeSpan.FromHours(1); // the tests call the takeover themselves
        var log = _store.Open();
        var coordinator = new TransactionCoordinator(options, log, [_orders, _payments]);
        await coordinator.StartAsync();
        return (coordinator, log);
    }

    private static async Task Until(Func<bool> condition)
    {
        for (var i = 0; i < 500 && !condition(); i++)
        {
            await Task.Delay(10);
        }

        Assert.True(condition());
    }
}
