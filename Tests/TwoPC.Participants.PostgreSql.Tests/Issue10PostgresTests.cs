using Dapper;
using Npgsql;
using TwoPC.Participants.PostgreSql.Tests.Infrastructure;
using TwoPC.Protocol;
using TwoPC.TestServers;
using TwoPC.Transactions;
using TwoPC.Wal;
using BranchOutcome = TwoPC.Participants.BranchOutcome;
using VoteKind = TwoPC.Participants.VoteKind;

namespace TwoPC.Participants.PostgreSql.Tests;

/// <summary>Issue 10, PostgreSQL items 7, 8, 12, 20 (on the shared server).</summary>
[Collection("postgres")]
public sealed class Issue10PostgresTests(PostgresFixture fixture)
{
    [Fact]
    public async Task Item07_a_commit_redriven_after_the_branch_finished_asks_postgres_not_a_deletable_marker()
    {
        await using var db = await TwoDatabases.CreateAsync(fixture);
        var coordinator = await db.StartCoordinatorAsync();

        // Two branches prepared by hand (the coordinator's phase 1), their votes kept as the decision record keeps them.
        var tx = coordinator.Begin();
        var committed = await db.RmA.EnlistAsync(tx);
        var rolledBack = await db.RmB.EnlistAsync(tx);
        await committed.Connection.ExecuteAsync("UPDATE items SET value = 70 WHERE id = 7", transaction: committed.Transaction);
        await rolledBack.Connection.ExecuteAsync("UPDATE items SET value = 70 WHERE id = 7", transaction: rolledBack.Transaction);
        var committedVote = await committed.PrepareAsync(default);
        var rolledBackVote = await rolledBack.PrepareAsync(default);
        Assert.Equal((VoteKind.Yes, VoteKind.Yes), (committedVote.Kind, rolledBackVote.Kind));

        // Phase 2 ran (one committed, the other rolled back by someone else), then whatever evidence a cleanup may delete is gone.
        await using (var c = await db.A.OpenConnectionAsync())
        {
            await c.ExecuteAsync($"COMMIT PREPARED '{committed.Xid}'");
        }

        await using (var c = await db.B.OpenConnectionAsync())
        {
            await c.ExecuteAsync($"ROLLBACK PREPARED '{rolledBack.Xid}'");
        }

        await DeleteMarkersAsync(db.A);
        await DeleteMarkersAsync(db.B);

        // A restarted coordinator (fresh resource managers, the recovery data from its log) re-drives the commit: 42704.
        await using var a = NpgsqlDataSource.Create(db.A.ConnectionString);
        await using var b = NpgsqlDataSource.Create(db.B.ConnectionString);
        using var rmA = await PostgresResourceManager.CreateAsync("orders", a);
        using var rmB = await PostgresResourceManager.CreateAsync("payments", b);
        Assert.Equal(BranchOutcome.Committed, await rmA.CommitAsync(committed.Xid, committedVote.RecoveryData, default));
        Assert.Equal(BranchOutcome.Committed, await rmA.RollbackAsync(committed.Xid, committedVote.RecoveryData, default));
        Assert.Equal(BranchOutcome.RolledBack, await rmB.CommitAsync(rolledBack.Xid, rolledBackVote.RecoveryData, default));

        // A decision logged without the transaction id (by an older version): nothing can tell, so never a false answer.
        Assert.Equal(BranchOutcome.Unknown, await rmA.CommitAsync(committed.Xid, default, default));
        Assert.Equal(BranchOutcome.Unknown, await rmB.CommitAsync(rolledBack.Xid, default, default));
    }

    [Fact]
    public async Task Item08_a_read_only_transaction_votes_read_only()
    {
        await using var db = await TwoDatabases.CreateAsync(fixture);
        var coordinator = await db.StartCoordinatorAsync();

        var tx = coordinator.Begin();
        var orders = await db.RmA.EnlistAsync(tx);
        var payments = await db.RmB.EnlistAsync(tx);
        await orders.Connection.ExecuteAsync("UPDATE items SET value = 8 WHERE id = 8", transaction: orders.Transaction);
        await payments.Connection.ExecuteAsync("SET TRANSACTION READ ONLY", transaction: payments.Transaction);
        Assert.Equal(0, await payments.Connection.ExecuteScalarAsync<int>("SELECT value FROM items WHERE id = 8", transaction: payments.Transaction));
        var outcome = await tx.CommitAsync();

        Assert.True(OutcomeKind.Committed == outcome.Kind, outcome.Reason);
        Assert.Equal(VoteKind.ReadOnly, outcome.Branches[1].Vote);
        Assert.Equal(8, await TwoDatabases.ValueAsync(db.A, 8));
        Assert.Equal(0, await TwoDatabases.PreparedCountAsync(db.B));
    }

    [Fact]
    public async Task Item08_a_role_with_default_transaction_read_only_votes_read_only()
    {
        await using var db = await TwoDatabases.CreateAsync(fixture);
        var role = "reader_" + Guid.NewGuid().ToString("N")[..12];
        await using (var c = await db.B.OpenConnectionAsync())
        {
            await c.ExecuteAsync($"CREATE ROLE {role} LOGIN; ALTER ROLE {role} SET default_transaction_read_only = on; GRANT SELECT ON items TO {role}");
        }

        await using var readerSource = NpgsqlDataSource.Create(new NpgsqlConnectionStringBuilder(db.B.ConnectionString) { Username = role }.ConnectionString);
        using var reader = await PostgresResourceManager.CreateAsync("reader", readerSource);
        var options = new TransactionCoordinatorOptions { NodeId = "pg-tests", OrphanSafetyInterval = TimeSpan.FromMilliseconds(200), RecoveryInterval = TimeSpan.FromHours(1) };
        await using var coordinator = new TransactionCoordinator(options, new FileTransactionLog(new FileTransactionLogOptions { Directory = db.LogDirectory }), [db.RmA, reader]);
        await coordinator.StartAsync();

        var tx = coordinator.Begin();
        var orders = await db.RmA.EnlistAsync(tx);
        var readOnly = await reader.EnlistAsync(tx);
        await orders.Connection.ExecuteAsync("UPDATE items SET value = 9 WHERE id = 9", transaction: orders.Transaction);
        Assert.Equal(0, await readOnly.Connection.ExecuteScalarAsync<int>("SELECT value FROM items WHERE id = 9", transaction: readOnly.Transaction));
        var outcome = await tx.CommitAsync();

        Assert.True(OutcomeKind.Committed == outcome.Kind, outcome.Reason);
        Assert.Equal(VoteKind.ReadOnly, outcome.Branches[1].Vote);
        Assert.Equal(9, await TwoDatabases.ValueAsync(db.A, 9));
        Assert.Equal(0, await TwoDatabases.PreparedCountAsync(db.B));
    }

    [Fact]
    public async Task Item12_two_coordinators_with_one_node_id_on_different_logs_get_a_no_vote_naming_the_node_id()
    {
        await using var db = await TwoDatabases.CreateAsync(fixture);
        var first = await db.StartCoordinatorAsync();

        // A second coordinator with the same node id but its own (fresh) log: it hands out the same transaction ids.
        var otherLog = Directory.CreateTempSubdirectory("twopc-pg-other-log-");
        try
        {
            var options = new TransactionCoordinatorOptions { NodeId = "pg-tests", OrphanSafetyInterval = TimeSpan.FromHours(1), RecoveryInterval = TimeSpan.FromHours(1), LastResourceCommit = false };
            await using var second = new TransactionCoordinator(options, new FileTransactionLog(new FileTransactionLogOptions { Directory = otherLog.FullName }), [db.RmA, db.RmB]);
            await second.StartAsync();

            var held = first.Begin();
            var heldBranch = await db.RmA.EnlistAsync(held);
            await heldBranch.Connection.ExecuteAsync("UPDATE items SET value = 1 WHERE id = 1", transaction: heldBranch.Transaction);
            Assert.Equal(VoteKind.Yes, (await heldBranch.PrepareAsync(default)).Kind);

            var clash = second.Begin(TimeSpan.FromSeconds(5));
            Assert.Equal(held.Id, clash.Id);
            var clashA = await db.RmA.EnlistAsync(clash);
            var clashB = await db.RmB.EnlistAsync(clash);
            await clashA.Connection.ExecuteAsync("UPDATE items SET value = 2 WHERE id = 2", transaction: clashA.Transaction);
            await clashB.Connection.ExecuteAsync("UPDATE items SET value = 2 WHERE id = 2", transaction: clashB.Transaction);
            var outcome = await clash.CommitAsync();

            Assert.Equal(OutcomeKind.RolledBack, outcome.Kind);
            Assert.Contains("node id", outcome.Reason, StringComparison.Ordinal);
            Assert.Contains("pg-tests", outcome.Reason, StringComparison.Ordinal);
            Assert.Equal(0, await TwoDatabases.ValueAsync(db.A, 2));
            Assert.Equal(1, await TwoDatabases.PreparedCountAsync(db.A)); // the first coordinator's branch, untouched
            Assert.Equal(BranchOutcome.Committed, await db.RmA.CommitAsync(heldBranch.Xid, default, default));
            Assert.Equal(1, await TwoDatabases.ValueAsync(db.A, 1));
        }
        finally
        {
            otherLog.Delete(recursive: true);

            // gids are unique across the whole server: leave nothing prepared for the other tests.
            await using var c = await db.A.OpenConnectionAsync();
            foreach (var gid in await c.QueryAsync<string>("SELECT gid FROM pg_prepared_xacts WHERE database = current_database()"))
            {
                await c.ExecuteAsync($"ROLLBACK PREPARED '{gid}'");
            }
        }
    }

    [Fact]
    public async Task Item20_a_one_phase_commit_after_the_session_died_is_rolled_back_not_a_hazard()
    {
        await using var db = await TwoDatabases.CreateAsync(fixture);
        var coordinator = await db.StartCoordinatorAsync();

        var tx = coordinator.Begin();
        var orders = await db.RmA.EnlistAsync(tx);
        await orders.Connection.ExecuteAsync("UPDATE items SET value = 20 WHERE id = 10", transaction: orders.Transaction);
        var pid = orders.Connection.ProcessID;
        await using (var admin = await db.A.OpenConnectionAsync())
        {
            Assert.True(await admin.ExecuteScalarAsync<bool>("SELECT pg_terminate_backend(@pid)", new { pid }));
        }

        // The application's next statement fails (57P01); it calls commit anyway. No COMMIT ever reached the server.
        await Assert.ThrowsAnyAsync<NpgsqlException>(() => orders.Connection.ExecuteAsync("UPDATE items SET value = 21 WHERE id = 10", transaction: orders.Transaction));
        var outcome = await tx.CommitAsync();

        Assert.True(OutcomeKind.RolledBack == outcome.Kind, $"{outcome.Kind}: {outcome.Reason}");
        Assert.Empty(coordinator.GetHeuristics());
        Assert.Equal(0, await TwoDatabases.ValueAsync(db.A, 10));
    }

    [Theory]
    [InlineData(725UL, 900UL, 725UL)]
    [InlineData(4_294_967_290UL, (1UL << 32) + 10, 4_294_967_290UL)] // prepared just before the epoch turned
    [InlineData(5UL, (3UL << 32) + 10, (3UL << 32) + 5)]
    [InlineData(7UL, 7UL + 1, 7UL)]
    public void Item07_a_prepared_transactions_32_bit_xid_gets_the_epoch_of_the_next_xid_below_it(ulong xid, ulong next, ulong expected) =>
        Assert.Equal(expected, PostgresResourceManager.WithEpoch(xid, next));

    [Theory]
    [InlineData("")]
    [InlineData("xid8=")]
    [InlineData("xid8=-1")]
    [InlineData("xid8=18446744073709551616")]
    [InlineData("http://participant/callback")]
    public void Item07_recovery_data_without_a_transaction_id_decodes_to_none(string data) =>
        Assert.Null(PostgresRecoveryData.TryDecode(System.Text.Encoding.UTF8.GetBytes(data)));

    [Fact]
    public void Item07_recovery_data_round_trips_the_whole_64_bit_id() =>
        Assert.Equal(ulong.MaxValue, PostgresRecoveryData.TryDecode(PostgresRecoveryData.Encode(ulong.MaxValue).Span));

    [Fact]
    public async Task Item07_a_commit_repeated_after_a_restart_without_recovery_data_is_answered_from_the_scanned_transaction_id()
    {
        await using var db = await TwoDatabases.CreateAsync(fixture);
        var coordinator = await db.StartCoordinatorAsync();
        var tx = coordinator.Begin();
        var branch = await db.RmA.EnlistAsync(tx);
        await branch.Connection.ExecuteAsync("UPDATE items SET value = 6 WHERE id = 6", transaction: branch.Transaction);
        var vote = await branch.PrepareAsync(default);

        // A remote participant restarts (nothing in memory), scans, commits; the coordinator, not having heard, asks again.
        await using var a = NpgsqlDataSource.Create(db.A.ConnectionString);
        using var rm = await PostgresResourceManager.CreateAsync("orders", a);
        Assert.Contains(await rm.RecoverAsync(default), b => b.Xid == branch.Xid);
        Assert.Equal(BranchOutcome.Committed, await rm.CommitAsync(branch.Xid, default, default));
        await DeleteMarkersAsync(db.A);
        Assert.Equal(BranchOutcome.Committed, await rm.CommitAsync(branch.Xid, default, default));
        Assert.Equal(BranchOutcome.Committed, await rm.CommitAsync(branch.Xid, vote.RecoveryData, default));
        Assert.Equal(6, await TwoDatabases.ValueAsync(db.A, 6));
    }

    private static async Task DeleteMarkersAsync(NpgsqlDataSource ds)
    {
        await using var c = await ds.OpenConnectionAsync();
        await c.ExecuteAsync("DO $$ BEGIN IF to_regclass('twopc.markers') IS NOT NULL THEN DELETE FROM twopc.markers; END IF; END $$");
    }
}

/// <summary>Issue 10, PostgreSQL items 20 and 21 on servers of their own (stopped, or configured to make COMMIT wait).</summary>
public sealed class Issue10PostgresServerTests
{
    [Fact]
    public async Task Item20_a_one_phase_commit_whose_connection_dies_after_the_commit_record_reports_committed()
    {
        // A synchronous standby that never comes: COMMIT writes its commit record and then waits for it, so the
        // session can be terminated after the transaction committed but before the client hears so.
        var serverOptions = new PostgresServerOptions { Fsync = false, Settings = { ["synchronous_standby_names"] = "nobody", ["synchronous_commit"] = "local" } };
        await using var server = await PostgresServer.StartAsync(serverOptions);
        await using var ds = NpgsqlDataSource.Create(await server.CreateDatabaseAsync());
        await using (var c = await ds.OpenConnectionAsync())
        {
            await c.ExecuteAsync("CREATE TABLE items (id int PRIMARY KEY, value int NOT NULL); INSERT INTO items VALUES (1, 0)");
        }

        using var rm = await PostgresResourceManager.CreateAsync("orders", ds);
        var log = Directory.CreateTempSubdirectory("twopc-pg-20-");
        try
        {
            var options = new TransactionCoordinatorOptions { NodeId = "pg-tests", RecoveryInterval = TimeSpan.FromHours(1) };
            await using var coordinator = new TransactionCoordinator(options, new FileTransactionLog(new FileTransactionLogOptions { Directory = log.FullName }), [rm]);
            await coordinator.StartAsync();
            var tx = coordinator.Begin();
            var branch = await rm.EnlistAsync(tx);
            await branch.Connection.ExecuteAsync("SET LOCAL synchronous_commit = on; UPDATE items SET value = 20 WHERE id = 1", transaction: branch.Transaction);
            var pid = branch.Connection.ProcessID;
            var commit = tx.CommitAsync();

            await using (var admin = await ds.OpenConnectionAsync())
            {
                var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
                while (await admin.ExecuteScalarAsync<string?>("SELECT wait_event FROM pg_stat_activity WHERE pid = @pid", new { pid }) != "SyncRep")
                {
                    Assert.True(DateTime.UtcNow < deadline, "COMMIT never waited for the synchronous standby");
                    await Task.Delay(20);
                }

                Assert.True(await admin.ExecuteScalarAsync<bool>("SELECT pg_terminate_backend(@pid)", new { pid }));
            }

            var outcome = await commit.WaitAsync(TimeSpan.FromSeconds(60));
            Assert.True(OutcomeKind.Committed == outcome.Kind, $"{outcome.Kind}: {outcome.Reason}");
            Assert.Empty(coordinator.GetHeuristics());
            await using var check = await ds.OpenConnectionAsync();
            Assert.Equal(20, await check.ExecuteScalarAsync<int>("SELECT value FROM items WHERE id = 1"));
        }
        finally
        {
            log.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task Item21_a_resource_manager_is_created_while_its_server_is_down_and_works_once_it_is_up()
    {
        await using var server = await PostgresServer.StartAsync(new PostgresServerOptions { Fsync = false });
        var connectionString = await server.CreateDatabaseAsync();
        await using (var c = new NpgsqlConnection(connectionString))
        {
            await c.ExecuteAsync("CREATE TABLE items (id int PRIMARY KEY, value int NOT NULL); INSERT INTO items VALUES (1, 0)");
        }

        await server.StopAsync();
        NpgsqlConnection.ClearAllPools();
        await using var ds = NpgsqlDataSource.Create(connectionString);

        // Today's failure: CreateAsync needs the server, so no coordinator (and no recovery of anything else) can be built.
        using var rm = await PostgresResourceManager.CreateAsync("orders", ds);
        var log = Directory.CreateTempSubdirectory("twopc-pg-21-");
        try
        {
            var options = new TransactionCoordinatorOptions
            {
                NodeId = "pg-tests",
                RecoveryInterval = TimeSpan.FromHours(1),
                OrphanSafetyInterval = TimeSpan.FromMilliseconds(200),
                RetryBaseDelay = TimeSpan.FromMilliseconds(20),
                RetryMaxDelay = TimeSpan.FromMilliseconds(200),
            };
            await using var coordinator = new TransactionCoordinator(options, new FileTransactionLog(new FileTransactionLogOptions { Directory = log.FullName }), [rm]);
            await coordinator.StartAsync();
            Assert.Equal(["orders"], (await coordinator.RecoverAsync()).FailedResourceManagers);
            var down = coordinator.Begin();
            var unreachable = await Assert.ThrowsAnyAsync<NpgsqlException>(async () => await rm.EnlistAsync(down));
            Assert.Contains("'orders' cannot reach its server", unreachable.Message, StringComparison.Ordinal);
            await down.RollbackAsync();

            await server.StartAgainAsync();
            Assert.Empty((await coordinator.RecoverAsync()).FailedResourceManagers);
            var tx = coordinator.Begin();
            var branch = await rm.EnlistAsync(tx);
            await branch.Connection.ExecuteAsync("UPDATE items SET value = 21 WHERE id = 1", transaction: branch.Transaction);
            Assert.Equal(OutcomeKind.Committed, (await tx.CommitAsync()).Kind);
            await using var check = await ds.OpenConnectionAsync();
            Assert.Equal(21, await check.ExecuteScalarAsync<int>("SELECT value FROM items WHERE id = 1"));
        }
        finally
        {
            log.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task Item21_a_server_without_prepared_transactions_found_at_first_use_fails_with_the_configuration_error()
    {
        await using var server = await PostgresServer.StartAsync(new PostgresServerOptions { Fsync = false, MaxPreparedTransactions = 0 });
        var connectionString = await server.CreateDatabaseAsync();
        await server.StopAsync();
        NpgsqlConnection.ClearAllPools();
        await using var ds = NpgsqlDataSource.Create(connectionString);
        using var rm = await PostgresResourceManager.CreateAsync("misconfigured", ds);

        await server.StartAgainAsync();
        var log = Directory.CreateTempSubdirectory("twopc-pg-21-");
        try
        {
            await using var coordinator = new TransactionCoordinator(new TransactionCoordinatorOptions { NodeId = "pg-tests", RecoveryInterval = TimeSpan.FromHours(1) }, new FileTransactionLog(new FileTransactionLogOptions { Directory = log.FullName }), [rm]);
            await coordinator.StartAsync();
            var tx = coordinator.Begin();
            var error = await Assert.ThrowsAsync<PostgresConfigurationException>(async () => await rm.EnlistAsync(tx));
            Assert.Contains("max_prepared_transactions = 0", error.Message, StringComparison.Ordinal);
            await Assert.ThrowsAsync<PostgresConfigurationException>(async () => await rm.RecoverAsync(default));
        }
        finally
        {
            log.Delete(recursive: true);
        }
    }
}
