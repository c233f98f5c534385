using System.Globalization;
using TwoPC.Protocol;

namespace TwoPC.CrashHost;

/// <summary>
/// The command line of the crash host (plain parsing, no dependencies):
/// <code>
/// run     --log DIR [--segment-size BYTES] --data DIR --participants N --transactions T --concurrency C --seed S
///         [--no-votes P] [--crash-step STEP --crash-at K [--crash-k I]] [--fail-log-at K]
///         [--shape all|single-yes|one-phase] [--atomic true|false]
/// recover --log DIR [--segment-size BYTES] --data DIR --participants N [--crash-step STEP --crash-at K [--crash-k I]]
/// </code>
/// </summary>
/// <remarks>
/// <c>--crash-at K</c> counts the hook calls of <c>--crash-step</c> across all transactions and crashes
/// at the K-th (1-based). For the indexed steps (AfterPrepare: k-th vote, AfterBranchCommitted: k-th ack)
/// <c>--crash-k I</c> restricts the count to the calls whose index is I; 0 (the default) counts every call.
/// <c>--fail-log-at K</c> makes the K-th commit decision durable and then fails the log (see
/// <see cref="FaultInjectingLog"/>); the run then stays up, fail-stopped, until it is killed.
/// <c>--shape</c> says which branches a transaction has: <c>all</c> (default) one writing branch per
/// participant; <c>single-yes</c> a writing branch at rm0 and read-only branches at the others;
/// <c>one-phase</c> only rm0's writing branch. <c>--atomic false</c> makes the participants declare a
/// non-atomic commit (like a publisher or a remote participant), so even a lone Yes is logged.
/// </remarks>
internal sealed record HostArguments(
    string Mode,
    string LogDirectory,
    string DataDirectory,
    int Participants,
    int Transactions,
    int Concurrency,
    int Seed,
    double NoVoteProbability,
    ProtocolStep? CrashStep,
    int CrashAt,
    int CrashIndex,
    long? SegmentSize,
    int FailLogAt,
    string Shape = "all",
    bool Atomic = true)
{
    public const string Usage =
        "usage: TwoPC.CrashHost run --log DIR [--segment-size BYTES] --data DIR --participants N --transactions T --concurrency C --seed S [--no-votes P] [--crash-step STEP --crash-at K [--crash-k I]] [--fail-log-at K] [--shape all|single-yes|one-phase] [--atomic true|false]\n" +
        "       TwoPC.CrashHost recover --log DIR [--segment-size BYTES] --data DIR --participants N [--crash-step STEP --crash-at K [--crash-k I]]\n" +
        "STEP: BeforePrepare | AfterPrepare | DecisionLogged | AfterBranchCommitted | AfterEnd";

    /// <summary>The file where <c>run</c> appends (and fsyncs) the gtrid of every transaction it begins.</summary>
    public string BegunFile => Path.Combine(DataDirectory, "begun.txt");

    /// <summary>The directory of participant <paramref name="index"/> ("rm{index}").</summary>
    public string ParticipantDirectory(int index) => Path.Combine(DataDirectory, ParticipantName(index));

    public static string ParticipantName(int index) => "rm" + index.ToString(CultureInfo.InvariantCulture);

    /// <summary>Parses the arguments; throws <see cref="FormatException"/> with a readable message.</summary>
    public static HostArguments Parse(string[] args)
    {
        if (args.Length == 0 || args[0] is not ("run" or "recover"))
        {
            throw new FormatException("the first argument must be 'run' or 'recover'");
        }

        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 1; i < args.Length; i++)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal) || i + 1 >= args.Length)
            {
                throw new FormatException($"expected '--name value' at '{args[i]}'");
            }

            values[args[i][2..]] = args[++i];
        }

        var known = new HashSet<string>(StringComparer.Ordinal)
        {
            "log", "data", "segment-size", "participants", "transactions", "concurrency", "seed", "no-votes", "crash-step", "crash-at", "crash-k", "fail-log-at", "shape", "atomic",
        };
        foreach (var name in values.Keys)
        {
            if (!known.Contains(name))
            {
                throw new FormatException($"unknown option --{name}");
            }
        }

        var mode = args[0];
        var run = mode == "run";
        ProtocolStep? step = null;
        if (values.TryGetValue("crash-step", out var stepText) && !string.Equals(stepText, "none", StringComparison.OrdinalIgnoreCase))
        {
            step = Enum.TryParse<ProtocolStep>(stepText, ignoreCase: true, out var parsed) && Enum.IsDefined(parsed)
                ? parsed
                : throw new FormatException($"unknown --crash-step '{stepText}'");
        }

        var parsedArgs = new HostArguments(
            mode,
            Required(values, "log"),
            Required(values, "data"),
            Int(values, "participants", null),
            run ? Int(values, "transactions", null) : 0,
            run ? Int(values, "concurrency", 1) : 1,
            run ? Int(values, "seed", 0) : 0,
            Double(values, "no-votes", 0),
            step,
            Int(values, "crash-at", 1),
            Int(values, "crash-k", 0),
            values.TryGetValue("segment-size", out var segment)
                ? long.TryParse(segment, NumberStyles.Integer, CultureInfo.InvariantCulture, out var size) ? size : throw new FormatException($"--segment-size must be an integer, got '{segment}'")
                : null,
            run ? Int(values, "fail-log-at", 0) : 0,
            values.GetValueOrDefault("shape", "all"),
            !values.TryGetValue("atomic", out var atomic) || (bool.TryParse(atomic, out var isAtomic) ? isAtomic : throw new FormatException($"--atomic must be true or false, got '{atomic}'")));

        if (parsedArgs.Shape is not ("all" or "single-yes" or "one-phase"))
        {
            throw new FormatException($"--shape must be all, single-yes or one-phase, got '{parsedArgs.Shape}'");
        }

        if (parsedArgs.Participants < 1 || parsedArgs.Participants > 64)
        {
            throw new FormatException("--participants must be 1..64");
        }

        if (parsedArgs.Transactions < 0 || parsedArgs.Concurrency < 1 || parsedArgs.CrashAt < 1 || parsedArgs.CrashIndex < 0)
        {
            throw new FormatException("--transactions must be >= 0, --concurrency and --crash-at >= 1, --crash-k >= 0");
        }

        if (parsedArgs.NoVoteProbability is < 0 or > 1)
        {
            throw new FormatException("--no-votes must be a probability in [0, 1]");
        }

        return parsedArgs;
    }

    private static string Required(Dictionary<string, string> values, string name) =>
        values.TryGetValue(name, out var value) && value.Length > 0 ? value : throw new FormatException($"--{name} is required");

    private static int Int(Dictionary<string, string> values, string name, int? fallback)
    {
        if (!values.TryGetValue(name, out var text))
        {
            return fallback ?? throw new FormatException($"--{name} is required");
        }

        return int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value)
            ? value
            : throw new FormatException($"--{name} must be an integer, got '{text}'");
    }

    private static double Double(Dictionary<string, string> values, string name, double fallback)
    {
        if (!values.TryGetValue(name, out var text))
        {
            return fallback;
        }

        return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value)
            ? value
            : throw new FormatException($"--{name} must be a number, got '{text}'");
    }
}
