using Dapper;
using Npgsql;
using TwoPC.Participants.PostgreSql.Tests.Infrastructure;
using TwoPC.Protocol;
using TwoPC.Transactions;

namespace TwoPC.Participants.PostgreSql.Tests;

[Collection("postgres")]
public sealed class PostgresParticipantTests(PostgresFixture fixture)
{
    [Fact]
    public async Task Commit_across_two_databases_with_dapper_on_the_branch_connection()
    {
        await using var db = await TwoDatabases.CreateAsync(fixture);
        var coordinator = await db.StartCoordinatorAsync();

        var tx = coordinator.Begin();
        var orders = await db.RmA.EnlistAsync(tx);
        var payments = await db.RmB.EnlistAsync(tx);
        await orders.Connection.ExecuteAsync("UPDATE items SET value = value + 5 WHERE id = 1", transaction: orders.Transaction);
        await payments.Connection.ExecuteAsync("UPDATE items SET value = value - 5 WHERE id = 1", transaction: payments.Transaction);
        var outcome = await tx.CommitAsync();

        Assert.Equal(OutcomeKind.Committed, outcome.Kind);
        Assert.Equal(5, await TwoDatabases.ValueAsync(db.A, 1));
        Assert.Equal(-5, await TwoDatabases.ValueAsync(db.B, 1));
        Assert.Equal(0, await TwoDatabases.PreparedCountAsync(db.A));
        Assert.Equal(0, await TwoDatabases.PreparedCountAsync(db.B));
    }

    [Fact]
    public async Task Explicit_rollback_across_two_databases_changes_nothing()
    {
        await using var db = await TwoDatabases.CreateAsync(fixture);
        var coordinator = await db.StartCoordinatorAsync();

        var tx = coordinator.Begin();
        var orders = await db.RmA.EnlistAsync(tx);
        var payments = await db.RmB.EnlistAsync(tx);
        await orders.Connection.ExecuteAsync("UPDATE items SET value = 1 WHERE id = 2", transaction: orders.Transaction);
        await payments.Connection.ExecuteAsync("UPDATE items SET value = 1 WHERE id = 2", transaction: payments.Transaction);
        Assert.Equal(OutcomeKind.RolledBack, (await tx.RollbackAsync()).Kind);

        Assert.Equal(0, await TwoDatabases.ValueAsync(db.A, 2));
        Assert.Equal(0, await TwoDatabases.ValueAsync(db.B, 2));
    }

    [Fact]
    public async Task A_unique_violation_votes_no_and_rolls_back_both_databases()
    {
        await using var db = await TwoDatabases.CreateAsync(fixture);
        var coordinator = await db.StartCoordinatorAsync();
        await using (var c = await db.B.OpenConnectionAsync())
        {
            await c.ExecuteAsync("CREATE TABLE payments (order_id int, CONSTRAINT once UNIQUE (order_id) DEFERRABLE INITIALLY DEFERRED); INSERT INTO payments VALUES (42)");
        }

        var tx = coordinator.Begin();
        var orders = await db.RmA.EnlistAsync(tx);
        var payments = await db.RmB.EnlistAsync(tx);
        await orders.Connection.ExecuteAsync("UPDATE items SET value = 100 WHERE id = 3", transaction: orders.Transaction);

        // Deferred, so the violation surfaces only at PREPARE TRANSACTION: the branch votes no.
        await payments.Connection.ExecuteAsync("INSERT INTO payments VALUES (42)", transaction: payments.Transaction);
        var outcome = await tx.CommitAsync();

        Assert.Equal(OutcomeKind.RolledBack, outcome.Kind);
        Assert.Contains("23505", outcome.Reason, StringComparison.Ordinal);
        Assert.Contains("(payments)", outcome.Reason, StringComparison.Ordinal);
        Assert.Equal(0, await TwoDatabases.ValueAsync(db.A, 3));
        Assert.Equal(0, await TwoDatabases.PreparedCountAsync(db.A));
        Assert.Equal(0, await TwoDatabases.PreparedCountAsync(db.B));
    }

    [Fact]
    public async Task A_branch_that_wrote_nothing_votes_read_only()
    {
        await using var db = await TwoDatabases.CreateAsync(fixture);
        var coordinator = await db.StartCoordinatorAsync();

        var tx = coordinator.Begin();
        var orders = await db.RmA.EnlistAsync(tx);
        var payments = await db.RmB.EnlistAsync(tx);
        await orders.Connection.ExecuteAsync("UPDATE items SET value = 7 WHERE id = 4", transaction: orders.Transaction);
        Assert.Equal(0, await payments.Connection.ExecuteScalarAsync<int>("SELECT value FROM items WHERE id = 4", transaction: payments.Transaction));
        var outcome = await tx.CommitAsync();

        Assert.Equal(OutcomeKind.Committed, outcome.Kind);
        Assert.Equal(Participants.VoteKind.ReadOnly, outcome.Branches[1].Vote);
        Assert.Equal(7, await TwoDatabases.ValueAsync(db.A, 4));
    }

    [Fact]
    public async Task A_single_branch_commits_in_one_phase_without_prepare()
    {
        await using var db = await TwoDatabases.CreateAsync(fixture);
        var coordinator = await db.StartCoordinatorAsync();

        var tx = coordinator.Begin();
        var orders = await db.RmA.EnlistAsync(tx);
        await orders.Connection.ExecuteAsync("UPDATE items SET value = 9 WHERE id = 5", transaction: orders.Transaction);
        var outcome = await tx.CommitAsync();

        Assert.Equal(OutcomeKind.Committed, outcome.Kind);
        Assert.Null(outcome.Branches.Single().Vote);
        Assert.Equal(9, await TwoDatabases.ValueAsync(db.A, 5));
        await using var c = await db.A.OpenConnectionAsync();
        Assert.Null(await c.ExecuteScalarAsync<string?>("SELECT to_regclass('twopc.markers')::text"));
    }

    [Fact]
    public async Task A_one_phase_commit_of_an_aborted_transaction_reports_rolled_back()
    {
        await using var db = await TwoDatabases.CreateAsync(fixture);
        var coordinator = await db.StartCoordinatorAsync();

        var tx = coordinator.Begin();
        var orders = await db.RmA.EnlistAsync(tx);
        await orders.Connection.ExecuteAsync("UPDATE items SET value = 9 WHERE id = 5", transaction: orders.Transaction);
        await Assert.ThrowsAsync<PostgresException>(() => orders.Connection.ExecuteAsync("SELECT 1/0", transaction: orders.Transaction));
        var outcome = await tx.CommitAsync();

        Assert.Equal(OutcomeKind.RolledBack, outcome.Kind);
        Assert.Equal(0, await TwoDatabases.ValueAsync(db.A, 5));
    }

    [Fact]
    public async Task An_aborted_branch_votes_no_instead_of_silently_rolling_back_at_prepare()
    {
        await using var db = await TwoDatabases.CreateAsync(fixture);
        var coordinator = await db.StartCoordinatorAsync();

        var tx = coordinator.Begin();
        var orders = await db.RmA.EnlistAsync(tx);
        var payments = await db.RmB.EnlistAsync(tx);
        await orders.Connection.ExecuteAsync("UPDATE items SET value = 1 WHERE id = 6", transaction: orders.Transaction);
        await Assert.ThrowsAsync<PostgresException>(() => payments.Connection.ExecuteAsync("SELECT 1/0", transaction: payments.Transaction));
        var outcome = await tx.CommitAsync();

        Assert.Equal(OutcomeKind.RolledBack, outcome.Kind);
        Assert.Contains("25P02", outcome.Reason, StringComparison.Ordinal);
        Assert.Equal(0, await TwoDatabases.ValueAsync(db.A, 6));
        Assert.Equal(0, await TwoDatabases.PreparedCountAsync(db.A));
    }

    [Fact]
    public async Task A_temp_table_makes_prepare_fail_with_a_no_vote_and_nothing_prepared()
    {
        await using var db = await TwoDatabases.CreateAsync(fixture);
        var coordinator = await db.StartCoordinatorAsync();

        var tx = coordinator.Begin();
        var orders = await db.RmA.EnlistAsync(tx);
        var payments = await db.RmB.EnlistAsync(tx);
        await orders.Connection.ExecuteAsync("UPDATE items SET value = 1 WHERE id = 7", transaction: orders.Transaction);
        await payments.Connection.ExecuteAsync("CREATE TEMP TABLE scratch (x int); INSERT INTO scratch VALUES (1); UPDATE items SET value = 1 WHERE id = 7", transaction: payments.Transaction);
        var outcome = await tx.CommitAsync();

        Assert.Equal(OutcomeKind.RolledBack, outcome.Kind);
        Assert.Contains("0A000", outcome.Reason, StringComparison.Ordinal);
        Assert.Equal(0, await TwoDatabases.ValueAsync(db.A, 7));
        Assert.Equal(0, await TwoDatabases.ValueAsync(db.B, 7));
        Assert.Equal(0, await TwoDatabases.PreparedCountAsync(db.A));
        Assert.Equal(0, await TwoDatabases.PreparedCountAsync(db.B));
    }

    [Fact]
    public async Task A_backend_killed_during_branch_work_votes_no_and_leaks_nothing()
    {
        await using var db = await TwoDatabases.CreateAsync(fixture);
        var coordinator = await db.StartCoordinatorAsync();

        var tx = coordinator.Begin();
        var orders = await db.RmA.EnlistAsync(tx);
        var payments = await db.RmB.EnlistAsync(tx);
        await orders.Connection.ExecuteAsync("UPDATE items SET value = 1 WHERE id = 8", transaction: orders.Transaction);
        await payments.Connection.ExecuteAsync("UPDATE items SET value = 1 WHERE id = 8", transaction: payments.Transaction);
        var pid = payments.Connection.ProcessID;
        await using (var admin = await db.A.OpenConnectionAsync())
        {
            Assert.True(await admin.ExecuteScalarAsync<bool>("SELECT pg_terminate_backend(@pid)", new { pid }));
        }

        var outcome = await tx.CommitAsync();

        Assert.Equal(OutcomeKind.RolledBack, outcome.Kind);
        Assert.Equal(0, await TwoDatabases.ValueAsync(db.A, 8));
        Assert.Equal(0, await TwoDatabases.ValueAsync(db.B, 8));
        Assert.Equal(0, await TwoDatabases.PreparedCountAsync(db.A));
        Assert.Equal(0, await TwoDatabases.PreparedCountAsync(db.B));
        await using var c = await db.B.OpenConnectionAsync();
        Assert.Equal(0, await c.ExecuteScalarAsync<long>("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'"));
    }

    [Fact]
    public async Task Rollback_prepared_by_hand_after_the_decision_is_reported_as_heuristic()
    {
        await using var db = await TwoDatabases.CreateAsync(fixture);
        NpgsqlDataSource? target = null;
        Xid? victim = null;
        var coordinator = await db.StartCoordinatorAsync(o => o.StepHook = async (step, _, _) =>
        {
            if (step == ProtocolStep.DecisionLogged && victim is not null)
            {
                await using var c = await target!.OpenConnectionAsync();
                await c.ExecuteAsync($"ROLLBACK PREPARED '{victim}'");
            }
        });

        var tx = coordinator.Begin();
        var orders = await db.RmA.EnlistAsync(tx);
        var payments = await db.RmB.EnlistAsync(tx);
        (target, victim) = (db.B, payments.Xid);
        await orders.Connection.ExecuteAsync("UPDATE items SET value = 1 WHERE id = 9", transaction: orders.Transaction);
        await payments.Connection.ExecuteAsync("UPDATE items SET value = 1 WHERE id = 9", transaction: payments.Transaction);
        var outcome = await tx.CommitAsync();

        Assert.Equal(OutcomeKind.HeuristicMixed, outcome.Kind);
        Assert.Equal(Participants.BranchOutcome.RolledBack, outcome.Branches[1].Outcome);
        Assert.Single(coordinator.GetHeuristics());
        Assert.Equal(1, await TwoDatabases.ValueAsync(db.A, 9));
        Assert.Equal(0, await TwoDatabases.ValueAsync(db.B, 9));
    }

    [Fact]
    public async Task A_repeated_commit_after_success_is_recognised_as_committed()
    {
        await using var db = await TwoDatabases.CreateAsync(fixture);
        var coordinator = await db.StartCoordinatorAsync();

        var tx = coordinator.Begin();
        var orders = await db.RmA.EnlistAsync(tx);
        var payments = await db.RmB.EnlistAsync(tx);
        await orders.Connection.ExecuteAsync("UPDATE items SET value = 3 WHERE id = 10", transaction: orders.Transaction);
        await payments.Connection.ExecuteAsync("UPDATE items SET value = 3 WHERE id = 10", transaction: payments.Transaction);
        Assert.Equal(OutcomeKind.Committed, (await tx.CommitAsync()).Kind);

        // A lost END (or acknowledgement) repeats the commit: 42704, and PostgreSQL says the transaction committed: not a heuristic.
        Assert.Equal(Participants.BranchOutcome.Committed, await db.RmA.CommitAsync(orders.Xid, default, default));
        Assert.Equal(Participants.BranchOutcome.Committed, await db.RmB.RollbackAsync(payments.Xid, default, default));
    }

    [Fact]
    public async Task Prepared_transactions_of_another_node_or_a_foreign_gid_are_left_alone()
    {
        await using var db = await TwoDatabases.CreateAsync(fixture);
        var otherNode = Xid.ForBranch(new GlobalTransactionId(NodeId.Parse("other-node"), 1, 1), 1);
        await using (var c = await db.A.OpenConnectionAsync())
        {
            await c.ExecuteAsync($"BEGIN; UPDATE items SET value = 50 WHERE id = 1; PREPARE TRANSACTION '{otherNode}'");
        }

        await using (var c = await db.A.OpenConnectionAsync())
        {
            await c.ExecuteAsync("BEGIN; UPDATE items SET value = 60 WHERE id = 2; PREPARE TRANSACTION 'someone elses transaction'");
        }

        try
        {
            var coordinator = await db.StartCoordinatorAsync();
            await Task.Delay(300);
            var report = await coordinator.RecoverAsync();

            var seen = Assert.Single(report.Branches);
            Assert.Equal(otherNode, seen.Xid);
            Assert.Equal(TwoPC.Recovery.InDoubtResolution.Foreign, seen.Resolution);
            Assert.Equal(2, await TwoDatabases.PreparedCountAsync(db.A));
            Assert.NotNull(db.RmA.OldestPreparedAge);
        }
        finally
        {
            await using var c = await db.A.OpenConnectionAsync();
            await c.ExecuteAsync($"ROLLBACK PREPARED '{otherNode}'; ROLLBACK PREPARED 'someone elses transaction'");
        }
    }

    [Fact]
    public async Task Orphans_prepared_by_a_dead_coordinator_of_this_node_are_rolled_back()
    {
        await using var db = await TwoDatabases.CreateAsync(fixture);
        var orphan = Xid.ForBranch(new GlobalTransactionId(NodeId.Parse("pg-tests"), 0, 5), 1);
        await using (var c = await db.A.OpenConnectionAsync())
        {
            await c.ExecuteAsync($"BEGIN; UPDATE items SET value = 50 WHERE id = 1; PREPARE TRANSACTION '{orphan}'");
        }

        // A safety interval the start-up pass cannot outlast on a loaded machine (it must see the orphan as too young);
        // then passes until the orphan is old enough to be decided.
        var coordinator = await db.StartCoordinatorAsync(o => o.OrphanSafetyInterval = TimeSpan.FromSeconds(2));
        var report = await coordinator.RecoverAsync();
        for (var pass = 0; pass < 100 && report.Branches.All(b => b.Resolution == TwoPC.Recovery.InDoubtResolution.TooYoung); pass++)
        {
            await Task.Delay(100);
            report = await coordinator.RecoverAsync();
        }

        Assert.Equal(TwoPC.Recovery.InDoubtResolution.RolledBack, Assert.Single(report.Branches).Resolution);
        Assert.Equal(0, await TwoDatabases.PreparedCountAsync(db.A));
        Assert.Equal(0, await TwoDatabases.ValueAsync(db.A, 1));
    }

    [Theory]
    [InlineData("54504331_node.1.2_1'; DROP TABLE items; --")]
    [InlineData("x'")]
    [InlineData("a;b")]
    [InlineData("UPPER")]
    public void Hostile_gids_are_rejected_before_reaching_sql(string gid)
    {
        Assert.Throws<TransactionIdFormatException>(() => PostgresGid.Literal(gid));
        Assert.Throws<TransactionIdFormatException>(() => Xid.Parse(gid));
    }

    [Fact]
    public void An_oversized_gid_is_rejected()
    {
        Assert.Throws<TransactionIdFormatException>(() => PostgresGid.Literal(new string('a', 300)));
        Assert.Equal("'54504331_n.1.1_1'", PostgresGid.Literal("54504331_n.1.1_1"));
    }

    [Fact]
    public async Task A_server_with_max_prepared_transactions_zero_fails_fast_naming_the_setting()
    {
        await using var server = await TwoPC.TestServers.PostgresServer.StartAsync(new TwoPC.TestServers.PostgresServerOptions { MaxPreparedTransactions = 0 });
        await using var ds = NpgsqlDataSource.Create(server.ConnectionString());
        var error = await Assert.ThrowsAsync<PostgresConfigurationException>(() => PostgresResourceManager.CreateAsync("misconfigured", ds));
        Assert.Contains("max_prepared_transactions = 0", error.Message, StringComparison.Ordinal);
        Assert.Contains("restart", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_marker_table_of_an_older_version_is_left_untouched_and_still_answers_for_its_decisions()
    {
        await using var db = await TwoDatabases.CreateAsync(fixture);
        var coordinator = await db.StartCoordinatorAsync();
        var tx = coordinator.Begin();
        var orders = await db.RmA.EnlistAsync(tx);
        await orders.Connection.ExecuteAsync("UPDATE items SET value = 4 WHERE id = 4", transaction: orders.Transaction);
        Assert.Equal(Participants.VoteKind.Yes, (await orders.PrepareAsync(default)).Kind);

        // What an older version left: its marker table, with this branch's row and an expired one; the branch committed.
        await using (var c = await db.A.OpenConnectionAsync())
        {
            await c.ExecuteAsync(
                "CREATE SCHEMA twopc; CREATE TABLE twopc.markers (gid text PRIMARY KEY, created_at timestamptz NOT NULL DEFAULT now()); " +
                $"INSERT INTO twopc.markers VALUES ('{orders.Xid}', now() - interval '3 days'), ('old', now() - interval '3 days')");
            await c.ExecuteAsync($"COMMIT PREPARED '{orders.Xid}'");
        }

        // A restarted coordinator re-drives the decision that version logged (no transaction id in it).
        await using var a = NpgsqlDataSource.Create(db.A.ConnectionString);
        using var rm = await PostgresResourceManager.CreateAsync("orders", a);
        await rm.RecoverAsync(default);
        Assert.Equal(Participants.BranchOutcome.Committed, await rm.CommitAsync(orders.Xid, default, default));
        await using (var c = await db.A.OpenConnectionAsync())
        {
            Assert.Equal(2, await c.ExecuteScalarAsync<long>("SELECT count(*) FROM twopc.markers"));
        }

        await rm.ForgetAsync(orders.Xid, default);
        await using (var c = await db.A.OpenConnectionAsync())
        {
            Assert.Equal(["old"], await c.QueryAsync<string>("SELECT gid FROM twopc.markers"));
        }
    }
}
