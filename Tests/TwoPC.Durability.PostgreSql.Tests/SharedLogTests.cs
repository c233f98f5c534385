using TwoPC.Transactions;
using static TwoPC.Durability.PostgreSql.Tests.Records;

namespace TwoPC.Durability.PostgreSql.Tests;

/// <summary>Several nodes on one database: leases, takeover, fencing, status queries, group commit.</summary>
[Collection(PostgresCollection.Name)]
public sealed class SharedLogTests(PostgresFixture fixture) : IAsyncLifetime
{
    private string _db = string.Empty;

    public async Task InitializeAsync() => _db = await fixture.Server.CreateDatabaseAsync();

    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task Two_nodes_share_one_database_each_recovers_its_own_and_either_answers_for_both()
    {
        await using (var a = Log(_db))
        await using (var b = Log(_db))
        {
            var epochA = (await a.OpenAsync(NodeA, CancellationToken.None)).Epoch;
            var epochB = (await b.OpenAsync(NodeB, CancellationToken.None)).Epoch;
            await Task.WhenAll(
                a.LogCommitDecisionAsync(Decision(1, NodeA, epochA)).AsTask(),
                a.LogCommitDecisionAsync(Decision(2, NodeA, epochA)).AsTask(),
                b.LogCommitDecisionAsync(Decision(1, NodeB, epochB)).AsTask());

            // Any node answers for any transaction.
            Assert.Equal(SharedDecision.Committed, await b.FindDecisionAsync(Id(1, NodeA, epochA), CancellationToken.None));
            Assert.Equal(SharedDecision.Committed, await a.FindDecisionAsync(Id(1, NodeB, epochB), CancellationToken.None));
            // Node A still holds the epoch: a transaction of it without a decision may still be decided.
            Assert.Equal(SharedDecision.Undetermined, await b.FindDecisionAsync(Id(3, NodeA, epochA), CancellationToken.None));
            // An earlier epoch of node A is over: no decision can come any more (presumed abort).
            Assert.Equal(SharedDecision.Absent, await b.FindDecisionAsync(Id(3, NodeA, epochA - 1), CancellationToken.None));
            // A node the log has never seen.
            Assert.Equal(SharedDecision.Undetermined, await b.FindDecisionAsync(Id(1, NodeC, 1), CancellationToken.None));
            // Both hold live leases: neither is a takeover candidate of the other.
            Assert.Empty(await a.FindTakeoverCandidatesAsync(CancellationToken.None));
            Assert.Empty(await b.FindTakeoverCandidatesAsync(CancellationToken.None));
        }

        await using var restartedA = Log(_db);
        var state = await restartedA.OpenAsync(NodeA, CancellationToken.None);
        Assert.Equal(new ulong[] { 1, 2 }, state.PendingDecisions.Select(d => d.TransactionId.Sequence).ToArray());
        Assert.All(state.PendingDecisions, d => Assert.Equal(NodeA, d.TransactionId.Node));
    }

    [Fact]
    public async Task The_lease_is_renewed_in_the_background_and_a_renewing_node_is_no_candidate()
    {
        await using var a = Log(_db, lease: TimeSpan.FromSeconds(2));
        await using var b = Log(_db);
        await a.OpenAsync(NodeA, CancellationToken.None);
        await b.OpenAsync(NodeB, CancellationToken.None);
        var first = a.Lease!.ExpiresAt;

        await EventuallyAsync(() => Task.FromResult(a.Lease!.ExpiresAt > first.AddSeconds(2)), "the lease was renewed past its first expiry");

        // Past the first lease's end, on the database clock, and still live because it was renewed.
        Assert.True((bool)(await ScalarAsync(_db, "SELECT now() > $1", first.UtcDateTime))!);
        Assert.True((bool)(await ScalarAsync(_db, "SELECT expires_at > now() FROM twopc.nodes WHERE node_id = $1", NodeA.Value))!);
        Assert.Empty(await b.FindTakeoverCandidatesAsync(CancellationToken.None));
        Assert.Null(await b.TryTakeOverAsync(NodeA, CancellationToken.None));
        await a.LogCommitDecisionAsync(Decision(1, NodeA, a.Lease.Epoch));
        Assert.Null(a.Failure);
    }

    [Fact]
    public async Task An_expired_node_is_taken_over_its_pending_work_returned_and_its_next_write_refused()
    {
        await using var a = Log(_db, lease: TimeSpan.FromSeconds(1));
        await using var b = Log(_db);
        await using var c = Log(_db);
        var epochA = (await a.OpenAsync(NodeA, CancellationToken.None)).Epoch;
        await b.OpenAsync(NodeB, CancellationToken.None);
        await c.OpenAsync(NodeC, CancellationToken.None);
        foreach (var i in new ulong[] { 3, 1, 2 })
        {
            await a.LogCommitDecisionAsync(Decision(i, NodeA, epochA));
        }

        await a.LogHeuristicAsync(Heuristic(100, NodeA));
        a.LogEnd(Id(2, NodeA, epochA));

        // Node A pauses (GC, SIGSTOP, partition): it stops renewing and its lease lapses.
        a.RenewalPaused = true;
        await EventuallyAsync(async () => (await b.FindTakeoverCandidatesAsync(CancellationToken.None)).Any(l => l.Node == NodeA), "node A is a takeover candidate");
        var candidate = Assert.Single(await b.FindTakeoverCandidatesAsync(CancellationToken.None));
        Assert.Equal(epochA, candidate.Epoch);

        var takeover = await b.TryTakeOverAsync(NodeA, CancellationToken.None);

        Assert.NotNull(takeover);
        Assert.Equal(NodeA, takeover.Node);
        Assert.Equal(epochA + 1, takeover.FencedEpoch);
        Assert.Equal(new ulong[] { 1, 3 }, takeover.PendingDecisions.Select(d => d.TransactionId.Sequence).ToArray());
        AssertSame(Decision(1, NodeA, epochA), takeover.PendingDecisions[0]);
        AssertSame(Heuristic(100, NodeA), Assert.Single(takeover.Heuristics));

        // Adopted by a live node: no candidate any more, and nobody else takes it.
        Assert.Empty(await b.FindTakeoverCandidatesAsync(CancellationToken.None));
        Assert.Empty(await c.FindTakeoverCandidatesAsync(CancellationToken.None));
        Assert.Null(await c.TryTakeOverAsync(NodeA, CancellationToken.None));

        // Node A wakes up and tries to log a decision: refused, and the log stops (fail-stop).
        var refused = await Assert.ThrowsAsync<NodeFencedException>(() => a.LogCommitDecisionAsync(Decision(4, NodeA, epochA)).AsTask());
        Assert.Same(refused, a.Failure);
        var later = await Assert.ThrowsAsync<TransactionLogFailedException>(() => a.LogCommitDecisionAsync(Decision(5, NodeA, epochA)).AsTask());
        Assert.IsType<NodeFencedException>(later.InnerException);
        Assert.Throws<TransactionLogFailedException>(() => a.LogEnd(Id(1, NodeA, epochA)));
        await Assert.ThrowsAsync<TransactionLogFailedException>(() => a.TryTakeOverAsync(NodeB, CancellationToken.None).AsTask());

        // What every node now answers about node A's transactions.
        Assert.Equal(SharedDecision.Committed, await c.FindDecisionAsync(Id(1, NodeA, epochA), CancellationToken.None));
        Assert.Equal(SharedDecision.Absent, await c.FindDecisionAsync(Id(4, NodeA, epochA), CancellationToken.None));
        Assert.Equal(SharedDecision.Absent, await c.FindDecisionAsync(Id(2, NodeA, epochA), CancellationToken.None)); // ENDed and deleted

        // The taker finishes the work: its ENDs compact the dead node's rows.
        foreach (var decision in takeover.PendingDecisions)
        {
            b.LogEnd(decision.TransactionId);
        }

        await EventuallyAsync(async () => (long)(await ScalarAsync(_db, "SELECT count(*) FROM twopc.decisions WHERE node_id = $1", NodeA.Value))! == 0, "the taker's ENDs deleted node A's decisions");
    }

    [Fact]
    public async Task A_paused_node_whose_renewal_finds_it_taken_over_is_fenced()
    {
        await using var a = Log(_db, lease: TimeSpan.FromSeconds(1));
        await using var b = Log(_db);
        await a.OpenAsync(NodeA, CancellationToken.None);
        await b.OpenAsync(NodeB, CancellationToken.None);

        a.RenewalPaused = true;
        await ExpireLeaseAsync(_db, NodeA);
        Assert.NotNull(await b.TryTakeOverAsync(NodeA, CancellationToken.None));
        a.RenewalPaused = false;

        await EventuallyAsync(() => Task.FromResult(a.Failure is not null), "node A's next renewal fenced it");
        Assert.IsType<NodeFencedException>(a.Failure);
        await Assert.ThrowsAsync<TransactionLogFailedException>(() => a.LogCommitDecisionAsync(Decision(1)).AsTask());
    }

    [Fact]
    public async Task A_node_adopted_by_a_node_that_died_since_is_a_candidate_again()
    {
        await using var a = Log(_db, lease: TimeSpan.FromSeconds(1));
        await using var b = Log(_db, lease: TimeSpan.FromSeconds(1));
        await using var c = Log(_db);
        await a.OpenAsync(NodeA, CancellationToken.None);
        await b.OpenAsync(NodeB, CancellationToken.None);
        await c.OpenAsync(NodeC, CancellationToken.None);
        var epochA = a.Lease!.Epoch;
        await a.LogCommitDecisionAsync(Decision(1, NodeA, epochA));

        a.RenewalPaused = true;
        await ExpireLeaseAsync(_db, NodeA);
        Assert.NotNull(await b.TryTakeOverAsync(NodeA, CancellationToken.None));
        Assert.DoesNotContain(await c.FindTakeoverCandidatesAsync(CancellationToken.None), l => l.Node == NodeA);

        // The taker dies before it finished: both are candidates for node C.
        b.RenewalPaused = true;
        await ExpireLeaseAsync(_db, NodeB);
        var candidates = (await c.FindTakeoverCandidatesAsync(CancellationToken.None)).Select(l => l.Node).ToArray();
        Assert.Equal(new[] { NodeA, NodeB }, candidates);
        var again = await c.TryTakeOverAsync(NodeA, CancellationToken.None);
        Assert.NotNull(again);
        Assert.Equal(epochA + 2, again.FencedEpoch);
        Assert.Equal(Id(1, NodeA, epochA), Assert.Single(again.PendingDecisions).TransactionId);
    }

    [Fact]
    public async Task Concurrent_decisions_share_group_commit_batches()
    {
        await using var a = Log(_db);
        var epoch = (await a.OpenAsync(NodeA, CancellationToken.None)).Epoch;
        const int count = 500;
        var before = a.BatchCount;

        await Task.WhenAll(Enumerable.Range(1, count).Select(i => Task.Run(() => a.LogCommitDecisionAsync(Decision((ulong)i, NodeA, epoch)).AsTask())));

        var batches = a.BatchCount - before;
        Assert.InRange(batches, 1, count - 1);
        Assert.Equal((long)count, await ScalarAsync(_db, "SELECT count(*) FROM twopc.decisions WHERE node_id = $1", NodeA.Value));

        // ENDs interleaved with new decisions: deleted by the same batches (compaction), never the new rows.
        await Task.WhenAll(Enumerable.Range(1, count).Select(i => Task.Run(async () =>
        {
            a.LogEnd(Id((ulong)i, NodeA, epoch));
            await a.LogCommitDecisionAsync(Decision((ulong)(count + i), NodeA, epoch));
        })));
        await a.LogCommitDecisionAsync(Decision(2 * count + 1, NodeA, epoch)); // a batch after every END was queued
        Assert.Equal((long)count + 1, await ScalarAsync(_db, "SELECT count(*) FROM twopc.decisions WHERE node_id = $1", NodeA.Value));
        Assert.Equal(0L, await ScalarAsync(_db, "SELECT count(*) FROM twopc.decisions WHERE node_id = $1 AND decided_at < to_timestamp(1700000000.501)", NodeA.Value));
    }

    [Fact]
    public async Task A_write_racing_a_takeover_is_either_returned_by_the_takeover_or_refused_never_lost_never_both()
    {
        await using var b = Log(_db);
        await b.OpenAsync(NodeB, CancellationToken.None);
        var acknowledged = 0;
        var refused = 0;
        for (var round = 0; round < 40; round++)
        {
            var node = NodeId.Parse($"racer-{round}");
            await using var a = Log(_db);
            var epoch = (await a.OpenAsync(node, CancellationToken.None)).Epoch;
            a.RenewalPaused = true;
            var ids = Enumerable.Range(1, 24).Select(i => Id((ulong)i, node, epoch)).ToArray();

            // Before the race: acknowledged, so the takeover must return them.
            var writes = ids[..4].Select(id => a.LogCommitDecisionAsync(Decision(id)).AsTask()).ToList();
            await Task.WhenAll(writes);
            await ExpireLeaseAsync(_db, node); // paused past its lease, still writing

            // The race: 16 writes and the takeover at once.
            writes.AddRange(ids[4..20].Select(id => Task.Run(() => a.LogCommitDecisionAsync(Decision(id)).AsTask())));
            var takeover = await Task.Run(() => b.TryTakeOverAsync(node, CancellationToken.None).AsTask());
            Assert.NotNull(takeover);

            // After the race: refused.
            writes.AddRange(ids[20..].Select(id => Task.Run(() => a.LogCommitDecisionAsync(Decision(id)).AsTask())));
            var taken = takeover.PendingDecisions.Select(d => d.TransactionId).ToHashSet();

            for (var i = 0; i < ids.Length; i++)
            {
                var outcome = await Record.ExceptionAsync(() => writes[i]);
                Assert.True(i >= 4 || outcome is null, $"write {i} before the race failed: {outcome}");
                Assert.True(i < 20 || outcome is not null, $"write {i} after the takeover was acknowledged");
                var status = await b.FindDecisionAsync(ids[i], CancellationToken.None);
                if (outcome is null)
                {
                    acknowledged++;
                    Assert.Contains(ids[i], taken); // never lost
                    Assert.Equal(SharedDecision.Committed, status);
                }
                else
                {
                    refused++;
                    Assert.True(outcome is NodeFencedException or TransactionLogFailedException { InnerException: NodeFencedException }, outcome.ToString());
                    Assert.DoesNotContain(ids[i], taken); // never both
                    Assert.Equal(SharedDecision.Absent, status);
                }
            }

            Assert.Equal(taken.Count, ids.Count(id => taken.Contains(id))); // the takeover returned nothing else
            Assert.IsType<NodeFencedException>(a.Failure);
        }

        Assert.Equal(40 * 24, acknowledged + refused);
    }

    [Fact]
    public async Task A_takeover_during_a_batch_in_flight_waits_for_it_and_returns_its_decision()
    {
        await using var a = Log(_db);
        await using var b = Log(_db);
        var epoch = (await a.OpenAsync(NodeA, CancellationToken.None)).Epoch;
        await b.OpenAsync(NodeB, CancellationToken.None);
        a.RenewalPaused = true;
        await ExpireLeaseAsync(_db, NodeA);

        // Hold node A's batch inside its statement, after the fence check and before the commit.
        await ScalarAsync(_db, """
            CREATE FUNCTION twopc.slow_insert() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(1); RETURN NEW; END $$;
            CREATE TRIGGER slow_insert BEFORE INSERT ON twopc.decisions FOR EACH ROW EXECUTE FUNCTION twopc.slow_insert();
            """);
        var write = Task.Run(() => a.LogCommitDecisionAsync(Decision(1, NodeA, epoch)).AsTask());
        await EventuallyAsync(async () => (long)(await ScalarAsync(_db, "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'"))! > 0, "node A's batch is in flight");

        var takeover = await b.TryTakeOverAsync(NodeA, CancellationToken.None);

        await write; // acknowledged ...
        Assert.NotNull(takeover);
        Assert.Equal(Id(1, NodeA, epoch), Assert.Single(takeover.PendingDecisions).TransactionId); // ... and seen by the taker
        await Assert.ThrowsAsync<NodeFencedException>(() => a.LogCommitDecisionAsync(Decision(2, NodeA, epoch)).AsTask());
    }
}
