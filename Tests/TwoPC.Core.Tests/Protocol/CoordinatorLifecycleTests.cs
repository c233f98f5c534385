using TwoPC.Participants;
using TwoPC.Protocol;
using TwoPC.Testing;
using TwoPC.Transactions;
using TwoPC.Wal;
using static TwoPC.Tests.Protocol.CoordinatorFixture;

namespace TwoPC.Tests.Protocol;

/// <summary>Issue 10, items 13 and 14: what the coordinator keeps in flight, and what a shutdown does to a finished commit.</summary>
public sealed class CoordinatorLifecycleTests
{
    [Fact]
    public async Task Item13_transactions_that_finish_synchronously_leave_nothing_in_flight()
    {
        var log = new InMemoryTransactionLog();
        var reader = new ScriptedResourceManager("db") { Prepare = static (_, _) => ValueTask.FromResult(Vote.ReadOnly) };
        var other = new ScriptedResourceManager("db2") { Prepare = static (_, _) => ValueTask.FromResult(Vote.ReadOnly) };
        await using var coordinator = await StartAsync(log, reader, other);

        for (var i = 0; i < 2_000; i++)
        {
            var tx = (i % 4) switch
            {
                0 => coordinator.Begin(),                       // empty commit
                1 => BeginWith(coordinator, reader, other),     // read-only commit
                _ => BeginWith(coordinator, reader),            // one-phase commit / rollback
            };
            var outcome = i % 4 == 3 ? await tx.RollbackAsync() : await tx.CommitAsync();
            Assert.NotEqual(OutcomeKind.HeuristicHazard, outcome.Kind);
        }

        Assert.Equal(0, coordinator.ActiveTransactions);
        Assert.Equal(0, coordinator.InFlightCompletions);
    }

    [Fact]
    public async Task Item14_a_commit_whose_branches_answer_after_the_log_closed_still_reports_committed()
    {
        var directory = Directory.CreateTempSubdirectory("twopc-lifecycle-");
        try
        {
            var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var a = new ScriptedResourceManager("a");

            // A slow resource that answers after the shutdown, ignoring its cancellation.
            var b = new ScriptedResourceManager("b") { BeforeCommit = (_, _) => { started.TrySetResult(); return release.Task; } };
            var log = new FileTransactionLog(new FileTransactionLogOptions { Directory = directory.FullName });
            var coordinator = new TransactionCoordinator(Options(), log, [a, b]);
            await coordinator.StartAsync();

            var tx = BeginWith(coordinator, a, b);
            var commit = tx.CommitAsync();
            await started.Task;

            // Shutdown gives up waiting at once and closes the log while phase 2 still waits for "b".
            await coordinator.StopAsync(new CancellationToken(canceled: true));
            release.SetResult();

            var outcome = await commit;
            Assert.Equal(OutcomeKind.Committed, outcome.Kind);
            Assert.All(a.States.Values.Concat(b.States.Values), s => Assert.Equal(TestBranchState.Committed, s));
            await coordinator.DisposeAsync();
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }
}
