using TwoPC.Transactions;

namespace TwoPC.Tests.Crash;

/// <summary>
/// The crash matrix: the coordinator, in a separate process over a FileTransactionLog and three
/// file-backed participants, is SIGKILLed at each named protocol step and restarted on the same log;
/// after recovery every transaction must be committed at all participants or at none.
/// </summary>
[Collection(CrashTestCollection.Name)]
public sealed class CrashMatrixTests
{
    private const int Participants = 3;

    [Theory]
    // Commit was called, no branch asked to prepare yet.
    [InlineData("BeforePrepare", 0, CrashedExpectation.NotCommitted)]
    // After k of n votes (k = 1 and k = n - 1): no decision logged, presumed abort after the safety interval.
    [InlineData("AfterPrepare", 1, CrashedExpectation.NotCommitted)]
    [InlineData("AfterPrepare", Participants - 1, CrashedExpectation.NotCommitted)]
    // The decision is durable, no branch told: recovery must re-drive it to commit everywhere.
    [InlineData("DecisionLogged", 0, CrashedExpectation.Committed)]
    // Phase 2 half done: one of three branches acknowledged.
    [InlineData("AfterBranchCommitted", 1, CrashedExpectation.Committed)]
    // END appended (not forced): recovery at most repeats an idempotent commit.
    [InlineData("AfterEnd", 0, CrashedExpectation.Committed)]
    public Task Crash_at_step_then_recover_is_atomic(string step, int k, CrashedExpectation expected) =>
        CrashThenRecoverAsync("all", atomic: true, step, k, expected, seed: 7);

    [Theory]
    // One writing branch whose commit is not atomic (a publisher, a remote participant): its lone Yes is
    // logged, so a crash after the decision must end committed (issue 10, items 1, 2 and 10).
    [InlineData("single-yes", false, "AfterPrepare", 0, CrashedExpectation.NotCommitted)]
    [InlineData("single-yes", false, "DecisionLogged", 0, CrashedExpectation.Committed)]
    [InlineData("single-yes", false, "AfterBranchCommitted", 1, CrashedExpectation.Committed)]
    [InlineData("one-phase", false, "AfterPrepare", 1, CrashedExpectation.NotCommitted)]
    [InlineData("one-phase", false, "DecisionLogged", 0, CrashedExpectation.Committed)]
    // An atomic lone Yes needs no record: before its commit presumed abort, after it committed.
    [InlineData("single-yes", true, "AfterPrepare", 0, CrashedExpectation.NotCommitted)]
    [InlineData("single-yes", true, "AfterBranchCommitted", 1, CrashedExpectation.Committed)]
    public Task Crash_with_one_writing_branch_then_recover_is_atomic(string shape, bool atomic, string step, int k, CrashedExpectation expected) =>
        CrashThenRecoverAsync(shape, atomic, step, k, expected, seed: 11);

    [Fact]
    public async Task Crash_during_recovery_then_recover_again_is_atomic()
    {
        // Crash with a logged decision (and, at concurrency 4, possibly more transactions frozen around it).
        var spec = new RunSpec(Participants, Transactions: 12, Concurrency: 4, Seed: 3, NoVotes: 0.1, new CrashSpec("DecisionLogged", 0, At: 3));
        using var scenario = new CrashScenario(Participants, $"crash during recovery: {spec}, then recover crashing after the first ack");

        var run = await scenario.RunAsync(spec);
        if (run.CrashStep != "DecisionLogged")
        {
            Assert.Fail(scenario.Fail("the run did not reach the crash point"));
        }

        // Recovery re-drives the logged decision; kill it after the first branch acknowledged.
        var firstRecovery = await scenario.RecoverAsync(new CrashSpec("AfterBranchCommitted", 1, At: 1));
        if (firstRecovery.CrashStep != "AfterBranchCommitted")
        {
            Assert.Fail(scenario.Fail("recovery did not re-drive the logged decision (no AfterBranchCommitted step)"));
        }

        AssertStateAtCrash(scenario, "AfterBranchCommitted", 1, firstRecovery.CrashedTransaction!);

        await scenario.RecoverAsync();
        scenario.AssertAtomic([run], run.CrashedTransaction, CrashedExpectation.Committed);
        scenario.AssertAtomic([run], firstRecovery.CrashedTransaction, CrashedExpectation.Committed);
    }

    [Fact]
    public async Task Restarted_coordinator_recovers_then_runs_new_transactions_atomically()
    {
        // Crash in phase 2, then restart on the same log with new work: start-up recovery finishes the old
        // decision, and the new transactions get a new epoch, so their XIDs never collide with the old ones.
        var first = new RunSpec(Participants, Transactions: 8, Concurrency: 3, Seed: 5, NoVotes: 0.2, new CrashSpec("AfterBranchCommitted", 1, At: 2));
        var second = new RunSpec(Participants, Transactions: 8, Concurrency: 3, Seed: 6, NoVotes: 0.2, Crash: null);
        using var scenario = new CrashScenario(Participants, $"restart with new work: first {first}; then {second}");

        var run1 = await scenario.RunAsync(first);
        if (run1.CrashStep != "AfterBranchCommitted")
        {
            Assert.Fail(scenario.Fail("the first run did not reach the crash point"));
        }

        var run2 = await scenario.RunAsync(second);
        if (run2.CrashStep is not null || run2.Outcomes.Count != second.Transactions)
        {
            Assert.Fail(scenario.Fail("the second run did not finish every transaction"));
        }

        var epochs = scenario.ReadBegun().Select(g => GlobalTransactionId.Parse(g).Epoch).Distinct().Order().ToList();
        if (epochs.Count != 2 || epochs[0] >= epochs[1])
        {
            Assert.Fail(scenario.Fail($"expected the two runs to use two increasing epochs, found [{string.Join(", ", epochs)}]"));
        }

        await scenario.RecoverAsync();
        scenario.AssertAtomic([run1, run2], run1.CrashedTransaction, CrashedExpectation.Committed);
    }

    [Fact]
    public async Task Log_failure_after_a_durable_decision_then_crash_commits_it_everywhere()
    {
        // The third decision reaches the disk but its force reports an error; the log fail-stops. The
        // coordinator must keep those branches prepared (its periodic recovery runs for a while and must
        // not presume abort), and the restart must commit them from the log.
        var spec = new RunSpec(Participants, Transactions: 10, Concurrency: 3, Seed: 9, NoVotes: 0, Crash: null);
        using var scenario = new CrashScenario(Participants, $"log failure at the 3rd decision, then SIGKILL: {spec}");

        var (run, failedDecision) = await scenario.RunWithLogFailureAsync(spec, failAt: 3, linger: TimeSpan.FromSeconds(1.5));
        var atKill = scenario.ReadBranches().GetValueOrDefault(failedDecision) ?? [];
        if (atKill.Values.Any(s => s == Testing.TestBranchState.RolledBack))
        {
            Assert.Fail(scenario.Fail($"the fail-stopped coordinator rolled back a branch of {failedDecision}, whose decision is durable: {CrashScenario.Describe(atKill)}"));
        }

        await scenario.RecoverAsync();
        scenario.AssertAtomic([run], failedDecision, CrashedExpectation.Committed);
    }

    private static async Task CrashThenRecoverAsync(string shape, bool atomic, string step, int k, CrashedExpectation expected, int seed)
    {
        // The third occurrence, so some transactions finished before the crash and others are in flight.
        var spec = new RunSpec(Participants, Transactions: 8, Concurrency: 2, Seed: seed, NoVotes: 0.2, new CrashSpec(step, k, At: 3));
        using var scenario = new CrashScenario(Participants, $"crash matrix, shape={shape} atomic={atomic}: {spec}", shape: shape, atomic: atomic);

        var run = await scenario.RunAsync(spec);
        if (run.CrashStep != step)
        {
            Assert.Fail(scenario.Fail($"the run did not reach the crash point {spec.Crash}"));
        }

        AssertStateAtCrash(scenario, step, k, run.CrashedTransaction!);

        await scenario.RecoverAsync();
        scenario.AssertAtomic([run], run.CrashedTransaction, expected);
    }

    /// <summary>
    /// The branch files of the frozen transaction at the moment of the kill must match the step — this
    /// is what makes the crash land where the test says it does.
    /// </summary>
    internal static void AssertStateAtCrash(CrashScenario scenario, string step, int k, string gtrid)
    {
        var states = scenario.ReadBranches().GetValueOrDefault(gtrid) ?? [];
        var prepared = states.Values.Count(s => s == Testing.TestBranchState.Prepared);
        var committed = states.Values.Count(s => s == Testing.TestBranchState.Committed);
        var n = scenario.Writers;
        var ok = step switch
        {
            "BeforePrepare" => prepared == 0 && committed == 0,

            // Read-only branches leave no file, so only the "all" shape can count votes by files.
            "AfterPrepare" => (scenario.Shape != "all" || states.Count >= Math.Max(k, 1)) && committed == 0,
            "DecisionLogged" => prepared == n && committed == 0,
            "AfterBranchCommitted" => committed >= Math.Max(k, 1) && committed + prepared == n,
            "AfterEnd" => committed == n,
            _ => throw new ArgumentOutOfRangeException(nameof(step), step, "unknown step"),
        };
        if (!ok)
        {
            Assert.Fail(scenario.Fail($"at the crash ({step}, k={k}) transaction {gtrid} has an unexpected state: {CrashScenario.Describe(states)}"));
        }
    }
}

/// <summary>The crash tests start processes that fsync a lot: run them one at a time.</summary>
[CollectionDefinition(Name)]
public sealed class CrashTestCollection
{
    public const string Name = "Crash tests (separate processes)";
}
