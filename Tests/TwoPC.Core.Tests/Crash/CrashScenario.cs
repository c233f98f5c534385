using System.Globalization;
using System.Text;
using TwoPC.Testing;
using TwoPC.Transactions;

namespace TwoPC.Tests.Crash;

/// <summary>What a test expects of the transaction the crash froze.</summary>
public enum CrashedExpectation
{
    /// <summary>Either outcome is fine, as long as it is atomic.</summary>
    Atomic,

    /// <summary>Committed at every participant (a logged decision must be re-driven by recovery).</summary>
    Committed,

    /// <summary>Committed nowhere (no decision was logged: presumed abort).</summary>
    NotCommitted,
}

/// <summary>A crash point: the step, the index filter (k-th vote or ack; 0 = any) and the occurrence.</summary>
public sealed record CrashSpec(string Step, int K, int At)
{
    public IEnumerable<string> Arguments =>
        ["--crash-step", Step, "--crash-at", At.ToString(CultureInfo.InvariantCulture), "--crash-k", K.ToString(CultureInfo.InvariantCulture)];

    public override string ToString() => K > 0 ? $"{Step}(k={K})#{At}" : $"{Step}#{At}";
}

/// <summary>Parameters of one <c>run</c> of the crash host.</summary>
public sealed record RunSpec(int Participants, int Transactions, int Concurrency, int Seed, double NoVotes, CrashSpec? Crash, long? SegmentSize = null)
{
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"participants={Participants} transactions={Transactions} concurrency={Concurrency} host-seed={Seed} no-votes={NoVotes} crash={Crash?.ToString() ?? "none"} segment-size={SegmentSize?.ToString(CultureInfo.InvariantCulture) ?? "default"}");
}

/// <summary>What a host run printed and how it ended.</summary>
/// <param name="CrashStep">The step it froze at, or <see langword="null"/> when it ran to DONE.</param>
/// <param name="CrashedTransaction">The gtrid of the transaction it froze in.</param>
/// <param name="Outcomes">Outcomes the host reported to its caller (gtrid → OutcomeKind name).</param>
/// <param name="Transcript">The host's command line and output, for assertion messages.</param>
public sealed record HostResult(string? CrashStep, string? CrashedTransaction, IReadOnlyDictionary<string, string> Outcomes, string Transcript);

/// <summary>
/// One crash scenario in its own temporary directory: the log directory and the participants' data
/// directories, the host runs against them, and the atomicity checks over the branch files.
/// </summary>
internal sealed class CrashScenario : IDisposable
{
    public static readonly TimeSpan RunTimeout = TimeSpan.FromSeconds(45);
    public static readonly TimeSpan RecoverTimeout = TimeSpan.FromSeconds(40);

    private readonly StringBuilder _transcript = new();
    private List<string> _heuristics = [];

    public CrashScenario(int participants, string description, long? segmentSize = null, string shape = "all", bool atomic = true)
    {
        Participants = participants;
        Shape = shape;
        Atomic = atomic;
        Description = description;
        SegmentSize = segmentSize;
        Root = Path.Combine(Path.GetTempPath(), "twopc-crash-tests", Guid.NewGuid().ToString("N"));
        LogDirectory = Path.Combine(Root, "log");
        DataDirectory = Path.Combine(Root, "data");
        Directory.CreateDirectory(DataDirectory);
    }

    public int Participants { get; }

    /// <summary>Which branches each transaction has (the crash host's <c>--shape</c>).</summary>
    public string Shape { get; }

    /// <summary>Whether the participants declare an atomic commit (the crash host's <c>--atomic</c>).</summary>
    public bool Atomic { get; }

    /// <summary>How many branches of a transaction write (and so must all commit or none): every participant's, or only rm0's.</summary>
    public int Writers => Shape == "all" ? Participants : 1;

    public string Description { get; }

    public long? SegmentSize { get; }

    public string Root { get; }

    public string LogDirectory { get; }

    public string DataDirectory { get; }

    /// <summary>Everything the hosts of this scenario printed so far.</summary>
    public string Transcript => _transcript.ToString();

    /// <summary>
    /// Runs the workload; when it reaches the crash point, SIGKILLs it there. Fails if the host exits
    /// without reaching the crash point or DONE, exits non-zero after DONE, or reports an ERROR.
    /// </summary>
    public async Task<HostResult> RunAsync(RunSpec spec)
    {
        List<string> arguments =
        [
            "run", "--log", LogDirectory, "--data", DataDirectory,
            "--participants", spec.Participants.ToString(CultureInfo.InvariantCulture),
            "--transactions", spec.Transactions.ToString(CultureInfo.InvariantCulture),
            "--concurrency", spec.Concurrency.ToString(CultureInfo.InvariantCulture),
            "--seed", spec.Seed.ToString(CultureInfo.InvariantCulture),
            "--no-votes", spec.NoVotes.ToString("R", CultureInfo.InvariantCulture),
            .. SegmentArguments(),
            .. spec.Crash?.Arguments ?? [],
            "--shape", Shape, "--atomic", Atomic ? "true" : "false",
        ];
        using var host = CrashHostProcess.Start(arguments);
        var result = await DriveAsync(host, "DONE");
        if (host.StdoutLines.Any(l => l.StartsWith("ERROR ", StringComparison.Ordinal)))
        {
            Assert.Fail(Fail("the run reported an error to a caller"));
        }
        return result;
    }

    /// <summary>
    /// Runs the workload with an injected log failure (<c>--fail-log-at</c>): the K-th commit decision is
    /// durable but reported failed, and the log fail-stops. Waits until every worker stopped, lets the
    /// fail-stopped coordinator's periodic recovery run for <paramref name="linger"/>, then SIGKILLs it.
    /// Returns the result and the gtrid whose decision is durable.
    /// </summary>
    public async Task<(HostResult Result, string FailedDecision)> RunWithLogFailureAsync(RunSpec spec, int failAt, TimeSpan linger)
    {
        List<string> arguments =
        [
            "run", "--log", LogDirectory, "--data", DataDirectory,
            "--participants", spec.Participants.ToString(CultureInfo.InvariantCulture),
            "--transactions", spec.Transactions.ToString(CultureInfo.InvariantCulture),
            "--concurrency", spec.Concurrency.ToString(CultureInfo.InvariantCulture),
            "--seed", spec.Seed.ToString(CultureInfo.InvariantCulture),
            "--no-votes", spec.NoVotes.ToString("R", CultureInfo.InvariantCulture),
            "--fail-log-at", failAt.ToString(CultureInfo.InvariantCulture),
            .. SegmentArguments(),
        ];
        using var host = CrashHostProcess.Start(arguments);
        try
        {
            var line = await host.WaitForLineAsync(RunTimeout, "FAILSTOPPED", "DONE");
            if (line != "FAILSTOPPED")
            {
                Assert.Fail($"The run did not fail-stop after the injected log failure.\nScenario: {Description}\n{host.Describe()}");
            }

            await Task.Delay(linger);
            host.Kill();
            var failed = host.StdoutLines.Single(l => l.StartsWith("LOGFAILED ", StringComparison.Ordinal)).Split(' ')[1];
            var outcomes = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var outcome in host.StdoutLines.Where(l => l.StartsWith("OUTCOME ", StringComparison.Ordinal)))
            {
                var parts = outcome.Split(' ');
                outcomes[parts[1]] = parts[2];
            }

            return (new HostResult("LogFailed", failed, outcomes, host.Describe()), failed);
        }
        finally
        {
            _transcript.Append(host.Describe()).Append('\n');
        }
    }

    /// <summary>
    /// Restarts the coordinator on the same log and participants and lets it recover; with
    /// <paramref name="crash"/>, SIGKILLs it when recovery reaches that step (a crash during recovery).
    /// </summary>
    public async Task<HostResult> RecoverAsync(CrashSpec? crash = null)
    {
        List<string> arguments =
        [
            "recover", "--log", LogDirectory, "--data", DataDirectory,
            "--participants", Participants.ToString(CultureInfo.InvariantCulture),
            .. SegmentArguments(),
            .. crash?.Arguments ?? [],
        ];
        using var host = CrashHostProcess.Start(arguments);
        var result = await DriveAsync(host, "RECOVERED");
        if (result.CrashStep is null)
        {
            // With these participants no heuristic outcome is legitimate: AssertAtomic reports them.
            _heuristics = [.. host.StdoutLines.Where(l => l.StartsWith("HEURISTIC ", StringComparison.Ordinal)).Select(l => l["HEURISTIC ".Length..])];
        }

        return result;
    }

    /// <summary>The branch states of every transaction: gtrid → (participant index → state).</summary>
    public Dictionary<string, Dictionary<int, TestBranchState>> ReadBranches()
    {
        var branches = new Dictionary<string, Dictionary<int, TestBranchState>>(StringComparer.Ordinal);
        for (var i = 0; i < Participants; i++)
        {
            foreach (var (name, state) in FileResourceManager.ReadStates(Path.Combine(DataDirectory, "rm" + i.ToString(CultureInfo.InvariantCulture))))
            {
                var gtrid = Xid.Parse(name).GlobalId;
                if (!branches.TryGetValue(gtrid, out var states))
                {
                    branches[gtrid] = states = [];
                }

                if (!states.TryAdd(i, state))
                {
                    throw new InvalidOperationException($"participant rm{i} holds two branches of {gtrid} ({Root})");
                }
            }
        }

        return branches;
    }

    /// <summary>The gtrids the run hosts began (fsynced before any of their branches existed).</summary>
    public HashSet<string> ReadBegun()
    {
        var path = Path.Combine(DataDirectory, "begun.txt");
        var begun = new HashSet<string>(StringComparer.Ordinal);
        if (File.Exists(path))
        {
            // A line torn by the kill belongs to a transaction that has no branch yet: skip what does not parse.
            foreach (var line in File.ReadAllLines(path))
            {
                if (GlobalTransactionId.TryParse(line, out _))
                {
                    begun.Add(line);
                }
            }
        }

        return begun;
    }

    /// <summary>
    /// The atomicity invariant after recovery: for every transaction begun, its branches are committed
    /// at all participants or at none; nothing is left prepared; the outcomes reported to callers hold;
    /// the crashed transaction ended as <paramref name="crashedExpectation"/> says; and the last recovery
    /// left no heuristic outcome on record.
    /// </summary>
    public void AssertAtomic(IEnumerable<HostResult> runs, string? crashedTransaction, CrashedExpectation crashedExpectation)
    {
        var branches = ReadBranches();
        var begun = ReadBegun();
        var violations = new List<string>();
        foreach (var heuristic in _heuristics)
        {
            violations.Add($"heuristic outcome on record after recovery: {heuristic}");
        }

        foreach (var gtrid in branches.Keys.Where(g => !begun.Contains(g)))
        {
            violations.Add($"{gtrid}: has branch files but is not in the begun list");
        }

        foreach (var gtrid in begun.Union(branches.Keys).Order(StringComparer.Ordinal))
        {
            var states = branches.GetValueOrDefault(gtrid) ?? [];
            var committed = states.Count(s => s.Value == TestBranchState.Committed);
            var described = Describe(states);
            if (states.Values.Any(s => s == TestBranchState.Prepared))
            {
                violations.Add($"{gtrid}: still in doubt after recovery: {described}");
            }

            if (committed != 0 && committed != Writers)
            {
                violations.Add($"{gtrid}: NOT ATOMIC, committed at {committed} of {Writers} participants: {described}");
            }
        }

        foreach (var run in runs)
        {
            foreach (var (gtrid, kind) in run.Outcomes)
            {
                var states = branches.GetValueOrDefault(gtrid) ?? [];
                var committed = states.Count(s => s.Value == TestBranchState.Committed);
                switch (kind)
                {
                    case "Committed" when committed != Writers:
                        violations.Add($"{gtrid}: the caller was told Committed, but it is committed at {committed} of {Writers}: {Describe(states)}");
                        break;
                    case "RolledBack" when committed != 0:
                        violations.Add($"{gtrid}: the caller was told RolledBack, but it is committed at {committed} of {Writers}: {Describe(states)}");
                        break;
                    case "Committed" or "RolledBack":
                        break;
                    default:
                        violations.Add($"{gtrid}: the caller was told {kind} (no heuristic outcome is possible with these participants)");
                        break;
                }
            }
        }

        if (crashedTransaction is not null)
        {
            var states = branches.GetValueOrDefault(crashedTransaction) ?? [];
            var committed = states.Count(s => s.Value == TestBranchState.Committed);
            if (crashedExpectation == CrashedExpectation.Committed && committed != Writers)
            {
                violations.Add($"{crashedTransaction} (the crashed transaction): expected committed at every participant (its decision was logged), found {Describe(states)}");
            }
            else if (crashedExpectation == CrashedExpectation.NotCommitted && committed != 0)
            {
                violations.Add($"{crashedTransaction} (the crashed transaction): expected committed nowhere (no decision was logged: presumed abort), found {Describe(states)}");
            }
        }

        if (violations.Count > 0)
        {
            Assert.Fail(Fail($"{violations.Count} atomicity violation(s):\n  " + string.Join("\n  ", violations)));
        }
    }

    /// <summary>A failure message: the scenario, the branch files and the transcript of every host run.</summary>
    public string Fail(string what) =>
        $"{what}\nScenario: {Description}\nTemp dir: {Root}\nBranch files:\n{DescribeAll()}\n{Transcript}";

    public void Dispose()
    {
        if (Environment.GetEnvironmentVariable("TWOPC_CRASH_KEEP") == "1")
        {
            return;
        }

        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    public static string Describe(IReadOnlyDictionary<int, TestBranchState> states) =>
        states.Count == 0 ? "(no branch files)" : string.Join(", ", states.OrderBy(s => s.Key).Select(s => $"rm{s.Key}={s.Value}"));

    private string DescribeAll()
    {
        var branches = ReadBranches();
        return branches.Count == 0
            ? "  (none)"
            : string.Join('\n', branches.OrderBy(b => b.Key, StringComparer.Ordinal).Select(b => $"  {b.Key}: {Describe(b.Value)}"));
    }

    private IEnumerable<string> SegmentArguments() =>
        SegmentSize is { } size ? ["--segment-size", size.ToString(CultureInfo.InvariantCulture)] : [];

    private async Task<HostResult> DriveAsync(CrashHostProcess host, string finishedLine)
    {
        try
        {
            var line = await host.WaitForLineAsync(host.Arguments.StartsWith("run", StringComparison.Ordinal) ? RunTimeout : RecoverTimeout, "CRASHPOINT ", finishedLine);
            string? step = null;
            string? crashed = null;
            if (line is not null && line.StartsWith("CRASHPOINT ", StringComparison.Ordinal))
            {
                // The real crash: SIGKILL, no shutdown, no flush beyond what the protocol already forced.
                host.Kill();
                var parts = line.Split(' ');
                step = parts[1];
                crashed = parts[2];
            }
            else
            {
                var exit = await host.WaitForExitAsync(RecoverTimeout);
                if (line is null || exit != 0)
                {
                    Assert.Fail($"The crash host did not finish cleanly (expected {finishedLine} and exit code 0).\nScenario: {Description}\n{Transcript}{host.Describe()}");
                }
            }

            var outcomes = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var outcome in host.StdoutLines.Where(l => l.StartsWith("OUTCOME ", StringComparison.Ordinal)))
            {
                var parts = outcome.Split(' ');
                outcomes[parts[1]] = parts[2];
            }

            return new HostResult(step, crashed, outcomes, host.Describe());
        }
        finally
        {
            _transcript.Append(host.Describe()).Append('\n');
        }
    }
}
