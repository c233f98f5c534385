using TwoPC.Durability;
using TwoPC.Participants;
using TwoPC.Protocol;
using TwoPC.Testing;
using TwoPC.Transactions;
using static TwoPC.Tests.Protocol.CoordinatorFixture;

namespace TwoPC.Tests.Protocol;

/// <summary>
/// Issue 10, items 1-3 and 10 at the protocol level: a resource whose commit is not one atomic step (a
/// publisher, a remote participant; <see cref="IResourceManager.CommitsAtomically"/> false) never takes the
/// no-record shortcuts. The real-broker and multi-process versions live with the participants.
/// </summary>
public sealed class NonAtomicCommitTests
{
    [Fact]
    public async Task Item01_single_yes_among_read_only_branches_is_logged_when_its_commit_is_not_atomic()
    {
        var log = new InMemoryTransactionLog();
        var reader = new ScriptedResourceManager("db") { Prepare = static (_, _) => ValueTask.FromResult(Vote.ReadOnly) };
        var publisher = new ScriptedResourceManager("mq") { CommitsAtomically = false };
        await using var coordinator = await StartAsync(log, reader, publisher);

        var tx = BeginWith(coordinator, reader, publisher);
        var outcome = await tx.CommitAsync();

        Assert.Equal(OutcomeKind.Committed, outcome.Kind);
        Assert.Equal(["decision " + tx.Id, "end " + tx.Id], log.Records);
    }

    [Fact]
    public async Task Item01_the_logged_single_yes_is_finished_by_recovery_after_its_commit_failed()
    {
        var log = new InMemoryTransactionLog();
        var reader = new ScriptedResourceManager("db") { Prepare = static (_, _) => ValueTask.FromResult(Vote.ReadOnly) };

        // The commit never gets through in this process (a publish keeps failing until the restart).
        var publisher = new ScriptedResourceManager("mq") { CommitsAtomically = false, CommitFailuresRemaining = int.MaxValue };
        var coordinator = await StartAsync(log, reader, publisher);
        var tx = BeginWith(coordinator, reader, publisher);
        var commit = tx.CommitAsync();
        await Eventually.TrueAsync(() => Task.FromResult(log.Records.Contains("decision " + tx.Id)), TimeSpan.FromSeconds(10));
        await coordinator.StopAsync(new CancellationToken(canceled: true)).WaitAsync(TimeSpan.FromSeconds(5));

        // The caller learns that the coordinator stopped (it is not left waiting); the restart finishes the commit.
        var stopped = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => commit.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains("recovery completes it", stopped.Message, StringComparison.Ordinal);

        publisher.CommitFailuresRemaining = 0;
        await using var restarted = await StartAsync(log, reader, publisher);
        Assert.Equal(TransactionState.Committed, await WaitForEndAsync(restarted, tx.Id));
        Assert.Equal(TestBranchState.Committed, publisher.States.Single().Value);
    }

    [Fact]
    public async Task Item02_a_lone_non_atomic_branch_is_prepared_logged_and_committed_until_it_answers()
    {
        var log = new InMemoryTransactionLog();
        var publisher = new ScriptedResourceManager("mq") { CommitsAtomically = false, CommitFailuresRemaining = 3 };
        await using var coordinator = await StartAsync(log, publisher);

        var tx = BeginWith(coordinator, publisher);
        var outcome = await tx.CommitAsync();

        Assert.Equal(OutcomeKind.Committed, outcome.Kind);
        Assert.Equal(["decision " + tx.Id, "end " + tx.Id], log.Records);
        var xid = publisher.States.Single().Key;
        Assert.Equal(["prepare " + xid, "commit " + xid, "commit " + xid, "commit " + xid, "commit " + xid], publisher.Calls.Where(c => c != "recover"));
        Assert.Empty(coordinator.GetHeuristics());
    }

    [Fact]
    public async Task Item03_a_lone_non_atomic_branch_that_votes_no_rolls_back_cleanly()
    {
        var log = new InMemoryTransactionLog();
        var publisher = new ScriptedResourceManager("mq") { CommitsAtomically = false, Prepare = static (_, _) => ValueTask.FromResult(Vote.No("exchange 'orderz' does not exist")) };
        await using var coordinator = await StartAsync(log, publisher);

        var tx = BeginWith(coordinator, publisher);
        var outcome = await tx.CommitAsync();

        Assert.Equal(OutcomeKind.RolledBack, outcome.Kind);
        Assert.Contains("exchange 'orderz' does not exist", outcome.Reason, StringComparison.Ordinal);
        Assert.Empty(log.Records);
        Assert.Empty(coordinator.GetHeuristics());
    }

    [Fact]
    public async Task An_atomic_lone_branch_still_commits_in_one_phase_without_a_record()
    {
        var log = new InMemoryTransactionLog();
        var db = new ScriptedResourceManager("db");
        await using var coordinator = await StartAsync(log, db);

        var tx = BeginWith(coordinator, db);
        Assert.Equal(OutcomeKind.Committed, (await tx.CommitAsync()).Kind);

        Assert.Empty(log.Records);
        Assert.StartsWith("commit-one-phase ", Assert.Single(db.Calls, c => c != "recover"), StringComparison.Ordinal);
    }
}
