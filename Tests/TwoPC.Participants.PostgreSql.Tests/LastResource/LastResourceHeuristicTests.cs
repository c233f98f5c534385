using Dapper;
using TwoPC.Participants.PostgreSql.Tests.Infrastructure;
using TwoPC.Protocol;
using TwoPC.Transactions;

namespace TwoPC.Participants.PostgreSql.Tests.LastResource;

/// <summary>
/// A last-resource transaction that ends heuristic on real PostgreSQL: its committed marker stays while the heuristic is
/// on record (recovery does not re-drive it), and the operator's forget deletes it.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class LastResourceHeuristicTests(PostgresFixture fixture)
{
    [Fact]
    public async Task A_heuristic_keeps_its_marker_unredriven_until_the_operator_forgets_it_and_the_forget_deletes_it()
    {
        await using var dbs = await LastResourceDatabases.CreateAsync(fixture);
        Xid? victim = null;
        var coordinator = await dbs.StartCoordinatorAsync(o => o.StepHook = async (step, _, _) =>
        {
            if (step == ProtocolStep.AfterMarkerCommit && victim is { } xid)
            {
                // Someone rolls B's prepared branch back by hand between the decision and phase 2.
                await using var c = await dbs.B.DataSource.OpenConnectionAsync();
                await c.ExecuteAsync($"ROLLBACK PREPARED '{xid}'");
            }
        });
        var (tx, _, b) = await dbs.BeginIncrementAsync(coordinator);
        victim = b.Xid;

        var outcome = await tx.CommitAsync();

        Assert.Equal(OutcomeKind.HeuristicRollback, outcome.Kind);
        Assert.Equal("C", await dbs.A.MarkerAsync(tx.Id)); // released, not deleted

        // A restart reads the heuristic from the log; its marker scan finds the marker and leaves it to the operator.
        dbs.B.Statements.Clear();
        coordinator = await dbs.StartCoordinatorAsync();
        await coordinator.RecoverAsync();
        await coordinator.StopAsync();
        Assert.DoesNotContain(dbs.B.Statements, s => s.StartsWith("COMMIT PREPARED", StringComparison.Ordinal));
        Assert.Equal("C", await dbs.A.MarkerAsync(tx.Id));

        coordinator = await dbs.StartCoordinatorAsync();
        Assert.True(await coordinator.ForgetHeuristicAsync(tx.Id));
        Assert.Null(await dbs.A.MarkerAsync(tx.Id));

        // Nothing is left to re-drive the forgotten transaction, after a restart either.
        dbs.B.Statements.Clear();
        coordinator = await dbs.StartCoordinatorAsync();
        await coordinator.RecoverAsync();
        await coordinator.StopAsync();
        Assert.DoesNotContain(dbs.B.Statements, s => s.StartsWith("COMMIT PREPARED", StringComparison.Ordinal));
        Assert.Empty(coordinator.GetHeuristics());
        Assert.Equal((1, 0), await dbs.ValuesAsync());
    }
}
