using Dapper;
using TwoPC.Participants.PostgreSql.Tests.Infrastructure;
using TwoPC.Protocol;
using TwoPC.Transactions;

namespace TwoPC.Participants.PostgreSql.Tests;

[Collection("postgres")]
public sealed class PostgresFailureTests(PostgresFixture fixture)
{
    [Fact]
    public async Task A_distributed_deadlock_ends_by_itself_with_one_side_voting_no()
    {
        await using var db = await TwoDatabases.CreateAsync(fixture);
        var coordinator = await db.StartCoordinatorAsync();

        // T1 locks A.1 then wants B.1; T2 locks B.1 then wants A.1: a cycle across two databases that
        // PostgreSQL's deadlock detector cannot see. The branches' lock waits are bounded by each
        // transaction's deadline (the coordinator's reaper ends T1's session), so T1 (shorter deadline) gives up
        // and T2 goes through.
        var t1 = coordinator.Begin(TimeSpan.FromSeconds(2));
        var t2 = coordinator.Begin(TimeSpan.FromSeconds(20));
        var t1a = await db.RmA.EnlistAsync(t1);
        var t1b = await db.RmB.EnlistAsync(t1);
        var t2a = await db.RmA.EnlistAsync(t2);
        var t2b = await db.RmB.EnlistAsync(t2);
        await t1a.Connection.ExecuteAsync("UPDATE items SET value = value + 1 WHERE id = 1", transaction: t1a.Transaction);
        await t2b.Connection.ExecuteAsync("UPDATE items SET value = value + 1 WHERE id = 1", transaction: t2b.Transaction);

        var first = Task.Run(async () =>
        {
            try
            {
                await t1b.Connection.ExecuteAsync("UPDATE items SET value = value + 1 WHERE id = 1", transaction: t1b.Transaction);
            }
            catch (Exception ex) when (ex is Npgsql.NpgsqlException or InvalidOperationException or ArgumentException)
            {
                // The reaper terminated the session (57P01; 55P03 with SET LOCAL timeouts): the branch is aborted and
                // will vote no. (Npgsql has been seen to surface a race with the statement as an internal error
                // instead; the branch fails either way.)
            }

            return await t1.CommitAsync();
        });
        var second = Task.Run(async () =>
        {
            await t2a.Connection.ExecuteAsync("UPDATE items SET value = value + 1 WHERE id = 1", transaction: t2a.Transaction);
            return await t2.CommitAsync();
        });

        var outcomes = await Task.WhenAll(first, second).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(OutcomeKind.RolledBack, outcomes[0].Kind);
        Assert.Equal(OutcomeKind.Committed, outcomes[1].Kind);
        Assert.Equal(1, await TwoDatabases.ValueAsync(db.A, 1));
        Assert.Equal(1, await TwoDatabases.ValueAsync(db.B, 1));
        Assert.Equal(0, await TwoDatabases.PreparedCountAsync(db.A));
        Assert.Equal(0, await TwoDatabases.PreparedCountAsync(db.B));
    }

    [Fact]
    public async Task The_timeout_reaper_ends_a_branch_whose_statement_is_still_waiting_on_a_lock()
    {
        // No SET LOCAL timeouts (the default for enlisted branches): only the coordinator's deadline can end T1's wait,
        // and it must do so without using the connection the application's statement is running on.
        await using var db = await TwoDatabases.CreateAsync(fixture);
        var coordinator = await db.StartCoordinatorAsync(o => o.DefaultTimeout = TimeSpan.FromSeconds(4));
        var holder = coordinator.Begin(TimeSpan.FromSeconds(30));
        var held = await db.RmB.EnlistAsync(holder);
        await held.Connection.ExecuteAsync("UPDATE items SET value = 100 WHERE id = 4", transaction: held.Transaction);

        var waiter = coordinator.Begin(TimeSpan.FromSeconds(1));
        var a = await db.RmA.EnlistAsync(waiter);
        var b = await db.RmB.EnlistAsync(waiter);
        await a.Connection.ExecuteAsync("UPDATE items SET value = 1 WHERE id = 4", transaction: a.Transaction);
        var blocked = await Record.ExceptionAsync(() => b.Connection.ExecuteAsync("UPDATE items SET value = 1 WHERE id = 4", transaction: b.Transaction)).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.NotNull(blocked);
        var outcome = await waiter.CommitAsync();
        Assert.Equal(OutcomeKind.RolledBack, outcome.Kind);
        Assert.Contains("timed out", outcome.Reason, StringComparison.Ordinal);
        Assert.Equal(OutcomeKind.Committed, (await holder.CommitAsync()).Kind);
        Assert.Equal(0, await TwoDatabases.ValueAsync(db.A, 4));
        Assert.Equal(100, await TwoDatabases.ValueAsync(db.B, 4));
        Assert.Equal(0, await TwoDatabases.PreparedCountAsync(db.A));
        Assert.Equal(0, await TwoDatabases.PreparedCountAsync(db.B));
    }

    [Fact]
    public async Task A_server_crash_while_branches_are_prepared_is_resolved_afterwards()
    {
        await using var db = await TwoDatabases.CreateAsync(fixture);
        var crashed = false;
        var coordinator = await db.StartCoordinatorAsync(o => o.StepHook = async (step, _, _) =>
        {
            if (step == ProtocolStep.DecisionLogged && !crashed)
            {
                crashed = true;

                // Both branches are prepared and the decision is durable: PostgreSQL crashes and comes back.
                await fixture.Server.RestartImmediateAsync();
            }
        });

        var tx = coordinator.Begin();
        var orders = await db.RmA.EnlistAsync(tx);
        var payments = await db.RmB.EnlistAsync(tx);
        await orders.Connection.ExecuteAsync("UPDATE items SET value = 11 WHERE id = 2", transaction: orders.Transaction);
        await payments.Connection.ExecuteAsync("UPDATE items SET value = 12 WHERE id = 2", transaction: payments.Transaction);
        var outcome = await tx.CommitAsync().WaitAsync(TimeSpan.FromSeconds(60));

        Assert.True(crashed);
        Assert.Equal(OutcomeKind.Committed, outcome.Kind);
        Assert.Equal(11, await TwoDatabases.ValueAsync(db.A, 2));
        Assert.Equal(12, await TwoDatabases.ValueAsync(db.B, 2));
        Assert.Equal(0, await TwoDatabases.PreparedCountAsync(db.A));
        Assert.Equal(0, await TwoDatabases.PreparedCountAsync(db.B));
    }

    [Fact]
    public async Task A_server_crash_before_the_decision_ends_rolled_back_with_nothing_prepared()
    {
        await using var db = await TwoDatabases.CreateAsync(fixture);
        var crashed = false;
        var coordinator = await db.StartCoordinatorAsync(o => o.StepHook = async (step, _, k) =>
        {
            if (step == ProtocolStep.AfterPrepare && k == 1 && !crashed)
            {
                crashed = true;
                await fixture.Server.RestartImmediateAsync();
            }
        });

        var tx = coordinator.Begin(TimeSpan.FromSeconds(30));
        var orders = await db.RmA.EnlistAsync(tx);
        var payments = await db.RmB.EnlistAsync(tx);
        await orders.Connection.ExecuteAsync("UPDATE items SET value = 11 WHERE id = 3", transaction: orders.Transaction);
        await payments.Connection.ExecuteAsync("UPDATE items SET value = 12 WHERE id = 3", transaction: payments.Transaction);
        var outcome = await tx.CommitAsync().WaitAsync(TimeSpan.FromSeconds(60));

        // Whatever the crash cut (one branch prepared, the other's session lost), the transaction is atomic.
        Assert.True(crashed);
        await Task.Delay(300);
        await coordinator.RecoverAsync();
        var a = await TwoDatabases.ValueAsync(db.A, 3);
        var b = await TwoDatabases.ValueAsync(db.B, 3);
        if (outcome.Kind == OutcomeKind.Committed)
        {
            Assert.Equal((11, 12), (a, b));
        }
        else
        {
            Assert.Equal(OutcomeKind.RolledBack, outcome.Kind);
            Assert.Equal((0, 0), (a, b));
        }

        Assert.Equal(0, await TwoDatabases.PreparedCountAsync(db.A));
        Assert.Equal(0, await TwoDatabases.PreparedCountAsync(db.B));
    }
}
