using System.Globalization;

namespace TwoPC.Tests.Crash;

/// <summary>
/// Seeded, reproducible random crashes: the seed picks the workload (participants, transactions,
/// concurrency up to 16, No-vote probability, WAL segment size), the crash step and occurrence, and
/// sometimes a second crash during recovery and/or a second run (new transactions on the restarted
/// coordinator, crashed again). Rerun a failing seed with <c>TWOPC_CRASH_SEEDS=seed</c>
/// (a comma-separated list replaces the default seeds).
/// </summary>
[Collection(CrashTestCollection.Name)]
public sealed class RandomizedCrashTests
{
    private static readonly int[] DefaultSeeds = [2, 5, 9, 23, 37, 41];

    private static readonly string[] Steps = ["BeforePrepare", "AfterPrepare", "DecisionLogged", "AfterBranchCommitted", "AfterEnd"];

    public static TheoryData<int> Seeds()
    {
        var seeds = Environment.GetEnvironmentVariable("TWOPC_CRASH_SEEDS") is { Length: > 0 } text
            ? text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(s => int.Parse(s, CultureInfo.InvariantCulture))
            : DefaultSeeds;
        var data = new TheoryData<int>();
        foreach (var seed in seeds)
        {
            data.Add(seed);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public async Task Random_crash_then_recover_is_atomic(int seed)
    {
        var random = new Random(seed);
        var participants = random.Next(2, 5);
        var transactions = random.Next(4, 41);
        var concurrency = random.Next(1, 17);
        var noVotes = new[] { 0, 0.1, 0.3, 0.6 }[random.Next(4)];
        var step = Steps[random.Next(Steps.Length)];
        var k = step is "AfterPrepare" or "AfterBranchCommitted" ? random.Next(0, participants + 1) : 0;
        var at = random.Next(1, Math.Max(2, transactions / 2));
        long? segmentSize = random.Next(3) == 0 ? 4096 * random.Next(1, 4) : null;
        var hostSeed = random.Next();
        CrashSpec? recoveryCrash = random.Next(3) == 0
            ? new CrashSpec(random.Next(2) == 0 ? "AfterBranchCommitted" : "AfterEnd", 0, random.Next(1, 3))
            : null;

        // Sometimes the restarted coordinator does not just recover but takes new work (and crashes again).
        RunSpec? secondRun = null;
        if (random.Next(3) == 0)
        {
            var step2 = Steps[random.Next(Steps.Length)];
            var k2 = step2 is "AfterPrepare" or "AfterBranchCommitted" ? random.Next(0, participants + 1) : 0;
            var transactions2 = random.Next(4, 31);
            secondRun = new RunSpec(participants, transactions2, random.Next(1, 17), random.Next(), noVotes, new CrashSpec(step2, k2, random.Next(1, Math.Max(2, transactions2 / 2))), segmentSize);
        }

        // The transaction's shape comes from its own stream, so the workload of a seed stays what it was:
        // half the seeds run every branch writing; the rest a single writing branch among read-only ones, or
        // a lone branch; either with atomic or non-atomic commits (a publisher, a remote participant).
        var shapes = new Random(seed * 31 + 7);
        var shape = shapes.Next(4) switch { 0 => "single-yes", 1 => "one-phase", _ => "all" };
        var atomic = shapes.Next(2) == 0;

        var spec = new RunSpec(participants, transactions, concurrency, hostSeed, noVotes, new CrashSpec(step, k, at), segmentSize);
        var description = $"seed={seed} (rerun: TWOPC_CRASH_SEEDS={seed.ToString(CultureInfo.InvariantCulture)}) shape={shape} atomic={atomic} {spec} recovery-crash={recoveryCrash?.ToString() ?? "none"} second-run={secondRun?.ToString() ?? "none"}";
        using var scenario = new CrashScenario(participants, description, segmentSize, shape, atomic);

        var runs = new List<HostResult>();
        var crashed = new List<(string Gtrid, CrashedExpectation Expected)>();
        await RunAndCheckAsync(scenario, spec, runs, crashed);

        if (recoveryCrash is not null)
        {
            // A crash during recovery (only reached when recovery re-drives a logged decision).
            var recovery = await scenario.RecoverAsync(recoveryCrash);
            if (recovery.CrashedTransaction is { } redriven)
            {
                crashed.Add((redriven, CrashedExpectation.Committed));
            }
        }

        if (secondRun is not null)
        {
            // Restart on the same log and participants: start-up recovery, then new transactions of a new epoch.
            await RunAndCheckAsync(scenario, secondRun, runs, crashed);
        }

        await scenario.RecoverAsync();
        if (crashed.Count == 0)
        {
            scenario.AssertAtomic(runs, null, CrashedExpectation.Atomic);
        }

        foreach (var (gtrid, expected) in crashed)
        {
            scenario.AssertAtomic(runs, gtrid, expected);
        }
    }

    private static async Task RunAndCheckAsync(CrashScenario scenario, RunSpec spec, List<HostResult> runs, List<(string Gtrid, CrashedExpectation Expected)> crashed)
    {
        var run = await scenario.RunAsync(spec);
        runs.Add(run);
        if (run.CrashStep is { } step && run.CrashedTransaction is { } gtrid)
        {
            CrashMatrixTests.AssertStateAtCrash(scenario, step, spec.Crash!.K, gtrid);
            crashed.Add((gtrid, step switch
            {
                // No decision was logged: presumed abort.
                "BeforePrepare" or "AfterPrepare" => CrashedExpectation.NotCommitted,

                // The decision was durable before this step: recovery must finish the commit.
                _ => CrashedExpectation.Committed,
            }));
        }
    }
}
