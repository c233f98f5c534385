using static TwoPC.Durability.PostgreSql.Tests.Records;

namespace TwoPC.Durability.PostgreSql.Tests;

/// <summary>
/// A batch whose commit answer was lost, and a takeover in between: the writer must not call "fenced" (certainly not
/// stored — the protocol then rolls back) a decision the taker has read and will commit.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class LostAnswerTests(PostgresFixture fixture)
{
    [Fact]
    public async Task A_batch_whose_lost_attempt_landed_before_the_takeover_is_acknowledged_not_refused()
    {
        var db = await fixture.Server.CreateDatabaseAsync();
        await using var a = Log(db);
        await using var b = Log(db);
        var epochA = (await a.OpenAsync(NodeA, CancellationToken.None)).Epoch;
        await b.OpenAsync(NodeB, CancellationToken.None);
        TakeoverState? takeover = null;

        // Attempt 1: its answer is lost (the connection broke) while its commit is still on its way. Attempt 2 finds
        // nothing stored yet; then attempt 1's commit lands, node B takes node A over (after it, as the row lock orders
        // them) and reads the decision — and only then does attempt 2 run its insert, which the new epoch refuses.
        a.BatchAttemptHook = async (attempt, landEarlierAttempt) =>
        {
            if (attempt == 1)
            {
                throw new IOException("the answer to the batch was lost");
            }

            if (attempt == 2)
            {
                await landEarlierAttempt();
                await ExpireLeaseAsync(db, NodeA);
                takeover = await b.TryTakeOverAsync(NodeA, CancellationToken.None);
            }
        };

        var decision = Decision(1, NodeA, epochA);
        await a.LogCommitDecisionAsync(decision); // durable, and so acknowledged: never NodeFencedException

        Assert.NotNull(takeover);
        AssertSame(decision, Assert.Single(takeover.PendingDecisions)); // the taker commits it too: both agree
    }
}
