using TwoPC.Participants;
using TwoPC.Protocol;
using TwoPC.Testing;
using TwoPC.Transactions;
using static TwoPC.Durability.PostgreSql.Tests.Records;

namespace TwoPC.Durability.PostgreSql.Tests;

/// <summary>The coordinator runs on the PostgreSQL log as on the file log.</summary>
[Collection(PostgresCollection.Name)]
public sealed class CoordinatorTests(PostgresFixture fixture) : IAsyncLifetime
{
    private string _db = string.Empty;

    public async Task InitializeAsync() => _db = await fixture.Server.CreateDatabaseAsync();

    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task A_coordinator_on_the_shared_log_forces_its_decision_before_phase_two_and_compacts_it_after()
    {
        var orders = new ScriptedResourceManager("orders");
        var events = new ScriptedResourceManager("events") { CommitsAtomically = false };
        long? decisionsDuringPhaseTwo = null;
        orders.BeforeCommit = async (_, _) => decisionsDuringPhaseTwo ??= (long)(await ScalarAsync(_db, "SELECT count(*) FROM twopc.decisions"))!;

        await using var coordinator = new TransactionCoordinator(new TransactionCoordinatorOptions { NodeId = "orders-1" }, Log(_db), [orders, events]);
        await coordinator.StartAsync();
        await using var tx = coordinator.Begin(TimeSpan.FromSeconds(30));
        tx.Enlist(orders.CreateBranch);
        tx.Enlist(events.CreateBranch);

        var outcome = await tx.CommitAsync();

        Assert.Equal(OutcomeKind.Committed, outcome.Kind);
        Assert.Equal(1L, decisionsDuringPhaseTwo); // the decision was in the database before the first branch committed
        await EventuallyAsync(async () => (long)(await ScalarAsync(_db, "SELECT count(*) FROM twopc.decisions"))! == 0, "the END compacted the decision");
        Assert.Equal(1L, await ScalarAsync(_db, "SELECT epoch FROM twopc.nodes WHERE node_id = 'orders-1'"));
    }
}
