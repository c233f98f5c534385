using TwoPC.Wal;
using static TwoPC.Durability.PostgreSql.Tests.Records;

namespace TwoPC.Durability.PostgreSql.Tests;

/// <summary>
/// The <see cref="ITransactionLog"/> contract (the cases of TwoPC.Core.Tests' TransactionLogContractTests, for the file
/// and in-memory logs), run against the PostgreSQL log: a "restart" is a new log instance on the same database.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ContractTests(PostgresFixture fixture) : IAsyncLifetime
{
    private string _db = string.Empty;

    public async Task InitializeAsync() => _db = await fixture.Server.CreateDatabaseAsync();

    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task A_new_node_starts_at_epoch_one_and_each_restart_takes_a_larger_epoch()
    {
        for (ulong expected = 1; expected <= 3; expected++)
        {
            await using var log = Log(_db);
            var state = await log.OpenAsync(NodeA, CancellationToken.None);
            Assert.Equal(expected, state.Epoch);
            Assert.Equal(expected, log.Lease!.Epoch);
            Assert.Equal(NodeA, log.Lease.Node);
            Assert.Empty(state.PendingDecisions);
            Assert.Empty(state.Heuristics);
            Assert.Empty(state.Warnings);
        }
    }

    [Fact]
    public async Task A_restart_finds_the_decisions_without_an_end_and_the_heuristics_not_forgotten_in_id_order()
    {
        await using (var log = Log(_db))
        {
            await log.OpenAsync(NodeA, CancellationToken.None);
            foreach (var i in new ulong[] { 4, 1, 3, 2, 5 })
            {
                await log.LogCommitDecisionAsync(Decision(i));
            }

            await log.LogHeuristicAsync(Heuristic(100));
            await log.LogHeuristicAsync(Heuristic(101));
            log.LogEnd(Id(2));
            log.LogEnd(Id(101));
            log.LogEnd(Id(999)); // an END for an unknown transaction is harmless
        }

        await using (var log = Log(_db))
        {
            var state = await log.OpenAsync(NodeA, CancellationToken.None);
            Assert.Equal(new ulong[] { 1, 3, 4, 5 }, state.PendingDecisions.Select(d => d.TransactionId.Sequence).ToArray());
            foreach (var decision in state.PendingDecisions)
            {
                AssertSame(Decision(decision.TransactionId.Sequence), decision);
            }

            AssertSame(Heuristic(100), Assert.Single(state.Heuristics));
            log.LogEnd(Id(100));
            log.LogEnd(Id(1));
        }

        await using (var log = Log(_db))
        {
            var state = await log.OpenAsync(NodeA, CancellationToken.None);
            Assert.Empty(state.Heuristics);
            Assert.Equal(new ulong[] { 3, 4, 5 }, state.PendingDecisions.Select(d => d.TransactionId.Sequence).ToArray());
        }

        // Compaction: the ENDed rows are gone from the tables, not just hidden.
        Assert.Equal(3L, await ScalarAsync(_db, "SELECT count(*) FROM twopc.decisions"));
        Assert.Equal(0L, await ScalarAsync(_db, "SELECT count(*) FROM twopc.heuristics"));
    }

    [Fact]
    public async Task One_process_per_node_id_a_second_opener_waits_for_the_live_lease_then_gives_up()
    {
        await using var first = Log(_db);
        await first.OpenAsync(NodeA, CancellationToken.None);

        await using var second = Log(_db, openTimeout: TimeSpan.FromSeconds(1));
        await Assert.ThrowsAsync<TransactionLogLockedException>(() => second.OpenAsync(NodeA, CancellationToken.None).AsTask());
        await first.LogCommitDecisionAsync(Decision(1)); // the first opener is unaffected
        Assert.Null(first.Failure);
        Assert.Equal(1UL, first.Lease!.Epoch);

        // A clean shutdown hands the lease back: the next opener need not wait.
        await first.DisposeAsync();
        var state = await second.OpenAsync(NodeA, CancellationToken.None);
        Assert.Equal(2UL, state.Epoch);
        Assert.Single(state.PendingDecisions);
    }

    [Fact]
    public async Task Open_waits_until_a_previous_run_that_died_lets_its_lease_lapse()
    {
        await using (var setup = Log(_db))
        {
            await setup.OpenAsync(NodeB, CancellationToken.None); // creates the schema
        }

        // Node A's previous run died a moment ago: its lease (epoch 5) is live for two more seconds.
        await ScalarAsync(_db, "INSERT INTO twopc.nodes (node_id, epoch, expires_at) VALUES ($1, 5, now() + interval '2 seconds')", NodeA.Value);
        var expiredAt = (DateTime)(await ScalarAsync(_db, "SELECT expires_at FROM twopc.nodes WHERE node_id = $1", NodeA.Value))!;

        await using var log = Log(_db);
        var state = await log.OpenAsync(NodeA, CancellationToken.None);

        Assert.Equal(6UL, state.Epoch);
        // On the database's clock, the open happened after the old lease expired.
        Assert.True((bool)(await ScalarAsync(_db, "SELECT now() > $1", expiredAt))!);
    }

    [Fact]
    public async Task Calls_after_dispose_throw_ObjectDisposedException()
    {
        var log = Log(_db);
        await log.OpenAsync(NodeA, CancellationToken.None);
        await log.DisposeAsync();
        await log.DisposeAsync(); // idempotent

        await Assert.ThrowsAsync<ObjectDisposedException>(() => log.LogCommitDecisionAsync(Decision(1)).AsTask());
        await Assert.ThrowsAsync<ObjectDisposedException>(() => log.LogHeuristicAsync(Heuristic(2)).AsTask());
        Assert.Throws<ObjectDisposedException>(() => log.LogEnd(Id(1)));
        await Assert.ThrowsAsync<ObjectDisposedException>(() => log.OpenAsync(NodeA, CancellationToken.None).AsTask());
    }

    [Fact]
    public async Task A_failed_force_stops_the_log_and_what_was_acknowledged_before_survives_the_restart()
    {
        // A failed log keeps no lease (it stops renewing and does not hand it back): a short one keeps the restart quick.
        await using (var log = Log(_db, lease: TimeSpan.FromSeconds(2)))
        {
            await log.OpenAsync(NodeA, CancellationToken.None);
            await log.LogCommitDecisionAsync(Decision(1));
            await log.LogCommitDecisionAsync(Decision(2));
            log.LogEnd(Id(2));
            Assert.Null(log.Failure);

            // The database refuses the next decision (not a lost connection: nothing to retry).
            await ScalarAsync(_db, "ALTER TABLE twopc.decisions ADD CONSTRAINT injected CHECK (gtrid IS NULL) NOT VALID");
            await Assert.ThrowsAsync<TransactionLogFailedException>(() => log.LogCommitDecisionAsync(Decision(3)).AsTask());
            Assert.IsType<TransactionLogFailedException>(log.Failure);

            // Fail-stop: every later call throws, whatever the database does now.
            await ScalarAsync(_db, "ALTER TABLE twopc.decisions DROP CONSTRAINT injected");
            await Assert.ThrowsAsync<TransactionLogFailedException>(() => log.LogCommitDecisionAsync(Decision(4)).AsTask());
            await Assert.ThrowsAsync<TransactionLogFailedException>(() => log.LogHeuristicAsync(Heuristic(5)).AsTask());
            Assert.Throws<TransactionLogFailedException>(() => log.LogEnd(Id(1)));
        }

        await using (var log = Log(_db, openTimeout: TimeSpan.FromSeconds(30)))
        {
            var state = await log.OpenAsync(NodeA, CancellationToken.None);
            Assert.Null(log.Failure);
            var pending = state.PendingDecisions.Select(d => d.TransactionId.Sequence).ToArray();
            Assert.Contains(1UL, pending);
            Assert.DoesNotContain(2UL, pending);
            Assert.DoesNotContain(4UL, pending);
        }
    }

    [Fact]
    public async Task Options_are_validated_and_the_schema_is_quoted()
    {
        Assert.Throws<ArgumentException>(() => new PostgreSqlTransactionLog(new PostgreSqlTransactionLogOptions { ConnectionString = _db, Schema = "bad-name; DROP TABLE x" }));
        Assert.Throws<ArgumentException>(() => new PostgreSqlTransactionLog(new PostgreSqlTransactionLogOptions()));
        Assert.Throws<ArgumentException>(() => new PostgreSqlTransactionLog(new PostgreSqlTransactionLogOptions { ConnectionString = _db, LeaseDuration = TimeSpan.FromSeconds(10), RenewInterval = TimeSpan.FromSeconds(5) }));
        Assert.Throws<ArgumentException>(() => PostgreSqlTransactionLog.CreateSchemaSql("1abc"));
        Assert.Contains("CREATE SCHEMA IF NOT EXISTS \"twopc\"", PostgreSqlTransactionLog.CreateSchemaSql(), StringComparison.Ordinal);

        await using var log = new PostgreSqlTransactionLog(new PostgreSqlTransactionLogOptions { ConnectionString = _db, Schema = "Coordinator_Log" });
        await log.OpenAsync(NodeA, CancellationToken.None);
        await log.LogCommitDecisionAsync(Decision(1));
        Assert.Equal(1L, await ScalarAsync(_db, "SELECT count(*) FROM \"Coordinator_Log\".decisions"));
    }
}
