using TwoPC.Durability;
using TwoPC.Participants;
using TwoPC.Protocol;
using TwoPC.Testing;
using TwoPC.Transactions;
using static TwoPC.Tests.Protocol.CoordinatorFixture;

namespace TwoPC.Tests.Protocol;

public sealed class TwoPhaseCommitTests
{
    [Fact]
    public async Task All_yes_forces_one_decision_commits_every_branch_then_ends()
    {
        var log = new InMemoryTransactionLog();
        var a = new ScriptedResourceManager("a");
        var b = new ScriptedResourceManager("b");
        await using var coordinator = await StartAsync(log, a, b);

        var tx = BeginWith(coordinator, a, b);
        var outcome = await tx.CommitAsync();

        Assert.Equal(OutcomeKind.Committed, outcome.Kind);
        Assert.All(outcome.Branches, r => Assert.Equal(BranchOutcome.Committed, r.Outcome));
        Assert.Equal(["decision " + tx.Id, "end " + tx.Id], log.Records);
        Assert.All(a.States.Values.Concat(b.States.Values), s => Assert.Equal(TestBranchState.Committed, s));
        Assert.Equal("data", System.Text.Encoding.UTF8.GetString(a.CommittedRecoveryData.Single().Value));
        Assert.Equal(TransactionState.Committed, coordinator.GetStatus(tx.Id).State);
    }

    [Fact]
    public async Task One_no_vote_rolls_back_every_branch_and_logs_nothing()
    {
        var log = new InMemoryTransactionLog();
        var a = new ScriptedResourceManager("a");
        var b = new ScriptedResourceManager("b") { Prepare = (_, _) => ValueTask.FromResult(Vote.No("unique violation")) };
        await using var coordinator = await StartAsync(log, a, b);

        var tx = BeginWith(coordinator, a, b);
        var outcome = await tx.CommitAsync();

        Assert.Equal(OutcomeKind.RolledBack, outcome.Kind);
        Assert.Contains("voted no: unique violation", outcome.Reason, StringComparison.Ordinal);
        Assert.Contains("(b)", outcome.Reason, StringComparison.Ordinal);
        Assert.Empty(log.Records);
        Assert.Equal(TestBranchState.RolledBack, a.States.Single().Value);
        Assert.Equal(TestBranchState.RolledBack, b.States.Single().Value);
        Assert.DoesNotContain(b.Calls, c => c.StartsWith("rollback", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_failing_prepare_counts_as_no()
    {
        var log = new InMemoryTransactionLog();
        var a = new ScriptedResourceManager("a");
        var b = new ScriptedResourceManager("b") { Prepare = (_, _) => throw new IOException("connection lost") };
        await using var coordinator = await StartAsync(log, a, b);

        var tx = BeginWith(coordinator, a, b);
        var outcome = await tx.CommitAsync();

        Assert.Equal(OutcomeKind.RolledBack, outcome.Kind);
        Assert.Contains("connection lost", outcome.Reason, StringComparison.Ordinal);
        Assert.All(a.States.Values.Concat(b.States.Values), s => Assert.Equal(TestBranchState.RolledBack, s));
        Assert.Empty(log.Records);
    }

    [Fact]
    public async Task A_prepare_that_outlives_the_deadline_rolls_back_and_logs_no_decision()
    {
        var log = new InMemoryTransactionLog();
        var a = new ScriptedResourceManager("a");

        // Ignores the token on purpose: the coordinator must stop waiting at the deadline anyway.
        var slow = new ScriptedResourceManager("slow") { Prepare = async (_, _) => { await Task.Delay(2_000, CancellationToken.None); return Vote.Yes(); } };
        await using var coordinator = await StartAsync(log, a, slow);

        var tx = coordinator.Begin(TimeSpan.FromMilliseconds(200));
        tx.Enlist(a.CreateBranch);
        tx.Enlist(slow.CreateBranch);
        var outcome = await tx.CommitAsync();

        Assert.Equal(OutcomeKind.RolledBack, outcome.Kind);
        Assert.Contains("deadline", outcome.Reason, StringComparison.Ordinal);
        Assert.DoesNotContain(log.Records, r => r.StartsWith("decision", StringComparison.Ordinal));
        Assert.Contains(slow.Calls, c => c.StartsWith("rollback", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_transaction_left_active_past_its_deadline_is_rolled_back()
    {
        var log = new InMemoryTransactionLog();
        var a = new ScriptedResourceManager("a");
        var b = new ScriptedResourceManager("b");
        var options = Options();
        options.DefaultTimeout = TimeSpan.FromMilliseconds(100);
        await using var coordinator = await StartAsync(options, log, a, b);

        var tx = BeginWith(coordinator, a, b);
        Assert.Equal(TransactionState.RolledBack, await WaitForEndAsync(coordinator, tx.Id));

        var outcome = await tx.CommitAsync();
        Assert.Equal(OutcomeKind.RolledBack, outcome.Kind);
        Assert.Contains("timed out", outcome.Reason, StringComparison.Ordinal);
        Assert.All(a.States.Values.Concat(b.States.Values), s => Assert.Equal(TestBranchState.RolledBack, s));
        Assert.Empty(log.Records);
    }

    [Fact]
    public async Task One_branch_commits_in_one_phase_and_logs_nothing()
    {
        var log = new InMemoryTransactionLog();
        var a = new ScriptedResourceManager("a");
        await using var coordinator = await StartAsync(log, a);

        var tx = BeginWith(coordinator, a);
        var outcome = await tx.CommitAsync();

        Assert.Equal(OutcomeKind.Committed, outcome.Kind);
        Assert.StartsWith("commit-one-phase", a.Calls.Single(c => c != "recover"), StringComparison.Ordinal);
        Assert.Empty(log.Records);
    }

    [Fact]
    public async Task A_failed_one_phase_commit_is_a_heuristic_hazard()
    {
        var log = new InMemoryTransactionLog();
        var a = new ScriptedResourceManager("a") { OnePhaseFailure = new IOException("connection reset during COMMIT") };
        await using var coordinator = await StartAsync(log, a);

        var tx = BeginWith(coordinator, a);
        var outcome = await tx.CommitAsync();

        Assert.Equal(OutcomeKind.HeuristicHazard, outcome.Kind);
        Assert.Equal(["heuristic " + tx.Id], log.Records);
        Assert.Single(coordinator.GetHeuristics());
    }

    [Fact]
    public async Task All_read_only_logs_nothing_and_skips_phase_two()
    {
        var log = new InMemoryTransactionLog();
        var a = new ScriptedResourceManager("a") { Prepare = (_, _) => ValueTask.FromResult(Vote.ReadOnly) };
        var b = new ScriptedResourceManager("b") { Prepare = (_, _) => ValueTask.FromResult(Vote.ReadOnly) };
        await using var coordinator = await StartAsync(log, a, b);

        var tx = BeginWith(coordinator, a, b);
        var outcome = await tx.CommitAsync();

        Assert.Equal(OutcomeKind.Committed, outcome.Kind);
        Assert.Empty(log.Records);
        Assert.DoesNotContain(a.Calls.Concat(b.Calls), c => c.StartsWith("commit", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Read_only_branches_are_left_out_of_the_decision_and_phase_two()
    {
        var log = new InMemoryTransactionLog();
        var ro = new ScriptedResourceManager("ro") { Prepare = (_, _) => ValueTask.FromResult(Vote.ReadOnly) };
        var a = new ScriptedResourceManager("a");
        var b = new ScriptedResourceManager("b");
        await using var coordinator = await StartAsync(log, ro, a, b);

        var tx = BeginWith(coordinator, ro, a, b);
        var outcome = await tx.CommitAsync();

        Assert.Equal(OutcomeKind.Committed, outcome.Kind);
        Assert.Equal(["decision " + tx.Id, "end " + tx.Id], log.Records);
        Assert.DoesNotContain(ro.Calls, c => c.StartsWith("commit", StringComparison.Ordinal));
        Assert.Equal(VoteKind.ReadOnly, outcome.Branches[0].Vote);
        Assert.Null(outcome.Branches[0].Outcome);
    }

    [Fact]
    public async Task A_single_yes_among_read_only_branches_commits_without_a_log_record()
    {
        var log = new InMemoryTransactionLog();
        var ro = new ScriptedResourceManager("ro") { Prepare = (_, _) => ValueTask.FromResult(Vote.ReadOnly) };
        var a = new ScriptedResourceManager("a");
        await using var coordinator = await StartAsync(log, ro, a);

        var tx = BeginWith(coordinator, ro, a);
        var outcome = await tx.CommitAsync();

        Assert.Equal(OutcomeKind.Committed, outcome.Kind);
        Assert.Empty(log.Records);
        Assert.Equal(TestBranchState.Committed, a.States.Single().Value);
    }

    [Fact]
    public async Task Transient_commit_failures_are_retried_until_acknowledged()
    {
        var log = new InMemoryTransactionLog();
        var a = new ScriptedResourceManager("a") { CommitFailuresRemaining = 5 };
        var b = new ScriptedResourceManager("b");
        await using var coordinator = await StartAsync(log, a, b);

        var tx = BeginWith(coordinator, a, b);
        var outcome = await tx.CommitAsync();

        Assert.Equal(OutcomeKind.Committed, outcome.Kind);
        Assert.Equal(6, a.Calls.Count(c => c.StartsWith("commit ", StringComparison.Ordinal)));
        Assert.Equal("end " + tx.Id, log.Records[^1]);
    }

    [Fact]
    public async Task A_branch_rolled_back_behind_our_back_after_the_decision_is_a_heuristic_kept_until_forgotten()
    {
        var log = new InMemoryTransactionLog();
        var a = new ScriptedResourceManager("a");
        var b = new ScriptedResourceManager("b") { CommitAnswer = BranchOutcome.RolledBack };
        await using var coordinator = await StartAsync(log, a, b);

        var tx = BeginWith(coordinator, a, b);
        var outcome = await tx.CommitAsync();

        Assert.Equal(OutcomeKind.HeuristicMixed, outcome.Kind);
        Assert.True(outcome.IsHeuristic);
        Assert.Equal(["decision " + tx.Id, "heuristic " + tx.Id], log.Records);
        var heuristic = Assert.Single(coordinator.GetHeuristics());
        Assert.Equal(tx.Id, heuristic.TransactionId);
        Assert.Equal(TransactionState.Heuristic, coordinator.GetStatus(tx.Id).State);

        Assert.True(await coordinator.ForgetHeuristicAsync(tx.Id));
        Assert.Empty(coordinator.GetHeuristics());
        Assert.Equal("end " + tx.Id, log.Records[^1]);
        Assert.Contains(b.Calls, c => c.StartsWith("forget", StringComparison.Ordinal));
        Assert.False(await coordinator.ForgetHeuristicAsync(tx.Id));
    }

    [Fact]
    public async Task Every_branch_rolled_back_behind_our_back_is_heuristic_rollback()
    {
        var log = new InMemoryTransactionLog();
        var a = new ScriptedResourceManager("a") { CommitAnswer = BranchOutcome.RolledBack };
        var b = new ScriptedResourceManager("b") { CommitAnswer = BranchOutcome.RolledBack };
        await using var coordinator = await StartAsync(log, a, b);

        var tx = BeginWith(coordinator, a, b);
        Assert.Equal(OutcomeKind.HeuristicRollback, (await tx.CommitAsync()).Kind);
    }

    [Fact]
    public async Task A_rollback_answered_with_committed_is_a_heuristic()
    {
        var log = new InMemoryTransactionLog();
        var a = new ScriptedResourceManager("a") { RollbackAnswer = BranchOutcome.Committed };
        var b = new ScriptedResourceManager("b") { Prepare = (_, _) => ValueTask.FromResult(Vote.No("no")) };
        await using var coordinator = await StartAsync(log, a, b);

        var tx = BeginWith(coordinator, a, b);
        var outcome = await tx.CommitAsync();

        Assert.Equal(OutcomeKind.HeuristicCommit, outcome.Kind);
        Assert.Equal(["heuristic " + tx.Id], log.Records);
    }

    [Fact]
    public async Task Cancelling_the_caller_after_the_decision_still_completes_phase_two()
    {
        var log = new InMemoryTransactionLog();
        var a = new ScriptedResourceManager("a");
        var b = new ScriptedResourceManager("b") { CommitFailuresRemaining = 20 };
        using var cts = new CancellationTokenSource();
        var options = Options();
        options.StepHook = (step, _, _) =>
        {
            if (step == ProtocolStep.DecisionLogged)
            {
                cts.Cancel();
            }

            return ValueTask.CompletedTask;
        };
        await using var coordinator = await StartAsync(options, log, a, b);

        var tx = BeginWith(coordinator, a, b);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => tx.CommitAsync(cts.Token));

        Assert.Equal(TransactionState.Committed, await WaitForEndAsync(coordinator, tx.Id));
        Assert.All(a.States.Values.Concat(b.States.Values), s => Assert.Equal(TestBranchState.Committed, s));
        Assert.Equal("end " + tx.Id, log.Records[^1]);
    }

    [Fact]
    public async Task Cancelling_the_caller_during_prepare_rolls_back()
    {
        var log = new InMemoryTransactionLog();
        var a = new ScriptedResourceManager("a");
        var preparing = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var b = new ScriptedResourceManager("b") { Prepare = async (_, ct) => { preparing.TrySetResult(); await Task.Delay(Timeout.Infinite, ct); return Vote.Yes(); } };
        await using var coordinator = await StartAsync(log, a, b);
        using var cts = new CancellationTokenSource();

        // Cancelled while b prepares (not on a timer: on a loaded machine a timer may fire before the commit starts,
        // and a commit that was cancelled before it began finishes at once and returns its rollback).
        var tx = BeginWith(coordinator, a, b);
        var commit = tx.CommitAsync(cts.Token);
        await preparing.Task;
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => commit);

        Assert.Equal(TransactionState.RolledBack, await WaitForEndAsync(coordinator, tx.Id));
        Assert.Empty(log.Records);
        Assert.All(a.States.Values.Concat(b.States.Values), s => Assert.Equal(TestBranchState.RolledBack, s));
    }

    [Fact]
    public async Task Commit_and_rollback_are_idempotent()
    {
        var log = new InMemoryTransactionLog();
        var a = new ScriptedResourceManager("a");
        var b = new ScriptedResourceManager("b");
        await using var coordinator = await StartAsync(log, a, b);

        var tx = BeginWith(coordinator, a, b);
        var first = await tx.CommitAsync();
        var second = await tx.CommitAsync();
        var rollback = await tx.RollbackAsync();

        Assert.Same(first, second);
        Assert.Same(first, rollback);
        Assert.Single(log.Records, r => r.StartsWith("decision", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Explicit_rollback_rolls_back_every_branch()
    {
        var log = new InMemoryTransactionLog();
        var a = new ScriptedResourceManager("a");
        var b = new ScriptedResourceManager("b");
        await using var coordinator = await StartAsync(log, a, b);

        var tx = BeginWith(coordinator, a, b);
        var outcome = await tx.RollbackAsync();

        Assert.Equal(OutcomeKind.RolledBack, outcome.Kind);
        Assert.All(a.States.Values.Concat(b.States.Values), s => Assert.Equal(TestBranchState.RolledBack, s));
        Assert.Throws<InvalidOperationException>(() => tx.Enlist(a.CreateBranch));
    }

    [Fact]
    public async Task Enlisting_requires_a_registered_resource_manager_and_an_active_transaction()
    {
        var log = new InMemoryTransactionLog();
        var a = new ScriptedResourceManager("a");
        await using var coordinator = await StartAsync(log, a);

        var tx = coordinator.Begin();
        var stranger = new ScriptedResourceManager("stranger");
        var error = Assert.Throws<InvalidOperationException>(() => tx.Enlist(stranger.CreateBranch));
        Assert.Contains("'stranger' is not registered", error.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => coordinator.RegisterResourceManager(new ScriptedResourceManager("a")));
    }

    [Fact]
    public async Task A_failed_decision_write_leaves_branches_in_doubt_and_stops_new_transactions()
    {
        var log = new InMemoryTransactionLog { FailNextForce = new IOException("No space left on device") };
        var a = new ScriptedResourceManager("a");
        var b = new ScriptedResourceManager("b");
        var coordinator = await StartAsync(log, a, b);

        var tx = BeginWith(coordinator, a, b);
        var error = await Assert.ThrowsAsync<TransactionLogFailedException>(() => tx.CommitAsync());

        Assert.Equal(TransactionState.InDoubt, tx.State);
        Assert.All(a.States.Values.Concat(b.States.Values), s => Assert.Equal(TestBranchState.Prepared, s));
        Assert.Throws<TransactionLogFailedException>(() => coordinator.Begin());

        // The decision may have reached the disk: recovery in this process must not presume abort.
        await Task.Delay(20);
        var report = await coordinator.RecoverAsync();
        Assert.All(report.Branches, b => Assert.Equal(TwoPC.Recovery.InDoubtResolution.Live, b.Resolution));
        Assert.All(a.States.Values.Concat(b.States.Values), s => Assert.Equal(TestBranchState.Prepared, s));
        await coordinator.DisposeAsync();

        // After a restart the log has no decision: presumed abort rolls the branches back.
        await using var restarted = await StartAsync(log, a, b);
        await Task.Delay(20);
        await restarted.RecoverAsync();
        Assert.All(a.States.Values.Concat(b.States.Values), s => Assert.Equal(TestBranchState.RolledBack, s));
        Assert.Contains("No space left", error.InnerException?.Message ?? error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Begin_before_start_is_refused()
    {
        var coordinator = new TransactionCoordinator(Options(), new InMemoryTransactionLog());
        var error = Assert.Throws<CoordinatorUnavailableException>(() => coordinator.Begin());
        Assert.Contains("StartAsync", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("", "NodeId")]
    [InlineData("Bad Node", "NodeId")]
    public void Invalid_options_fail_naming_the_setting(string node, string setting)
    {
        var options = Options();
        options.NodeId = node;
        var error = Assert.Throws<ArgumentException>(() => new TransactionCoordinator(options, new InMemoryTransactionLog()));
        Assert.Contains(setting, error.Message, StringComparison.Ordinal);

        options = Options();
        options.DefaultTimeout = TimeSpan.Zero;
        Assert.Contains("DefaultTimeout", Assert.Throws<ArgumentException>(() => new TransactionCoordinator(options, new InMemoryTransactionLog())).Message, StringComparison.Ordinal);
    }
}
