using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace TwoPC.Verify;

/// <summary>What the client saw of one transfer.</summary>
internal sealed class Operation(string id, int from, int to, long amount)
{
    public string Id { get; } = id;

    public int From { get; } = from;

    public int To { get; } = to;

    public long Amount { get; } = amount;

    /// <summary><c>Committed</c>, <c>RolledBack</c>, a heuristic kind, or null: unknown (the worker died, or the call failed).</summary>
    public string? Outcome { get; set; }

    public string? TransactionId { get; set; }

    public bool DesignedToFail => Amount == Bank.ImpossibleAmount;
}

/// <summary>Every operation and fault of a run, in order; written as JSON lines to the history file for diagnosis.</summary>
internal sealed class History(string? file) : IDisposable
{
    private readonly Lock _sync = new();
    private readonly Dictionary<string, Operation> _operations = new(StringComparer.Ordinal);
    private readonly Dictionary<int, CommitPaths> _paths = [];
    private readonly StreamWriter? _writer = file is null ? null : new StreamWriter(file, append: false) { AutoFlush = false };
    private readonly Stopwatch _clock = Stopwatch.StartNew();

    public IReadOnlyCollection<Operation> Operations
    {
        get
        {
            lock (_sync)
            {
                return [.. _operations.Values];
            }
        }
    }

    /// <summary>The commit paths the workers reported (<see cref="LastResourceCounters"/>): each incarnation's last line, summed.</summary>
    public CommitPaths Paths
    {
        get
        {
            lock (_sync)
            {
                return _paths.Values.Aggregate(new CommitPaths(0, 0, 0, 0, 0), (a, b) => a + b);
            }
        }
    }

    /// <summary>The run's settings, the first entry of the file.</summary>
    public void OnStart(RunSettings settings)
    {
        lock (_sync)
        {
            Write(new
            {
                t = _clock.ElapsedMilliseconds,
                process = "checker",
                run = new { seed = settings.Seed, seconds = settings.Duration.TotalSeconds, databases = settings.Databases.Count, settings.Accounts, settings.Concurrency, faults = settings.Faults, lastResourceCommit = settings.LastResourceCommitText },
            });
        }
    }

    /// <summary>Takes one line of a worker's output (<see cref="BankWorker"/>); lines it does not understand are kept in the file only.</summary>
    public void OnWorkerLine(int incarnation, string line)
    {
        var parts = line.Split(' ', 5);
        lock (_sync)
        {
            switch (parts)
            {
                case ["invoke", var op, var from, var to, var amount] when TryInt(from, out var f) && TryInt(to, out var t) && long.TryParse(amount, NumberStyles.None, CultureInfo.InvariantCulture, out var a):
                    _operations[op] = new Operation(op, f, t, a);
                    break;
                case ["ok", var op, var outcome, var tx, ..] when _operations.TryGetValue(op, out var operation) && IsOutcome(outcome):
                    operation.Outcome = outcome;
                    operation.TransactionId = tx;
                    break;
                case ["metrics", ..] when CommitPaths.TryParse(line, out var paths):
                    _paths[incarnation] = paths;
                    break;
            }

            Write(new { t = _clock.ElapsedMilliseconds, process = "worker", incarnation, line });
        }
    }

    public void OnConsumerLine(string line)
    {
        lock (_sync)
        {
            Write(new { t = _clock.ElapsedMilliseconds, process = "consumer", line });
        }
    }

    public void OnFault(Fault fault)
    {
        lock (_sync)
        {
            Write(new { t = _clock.ElapsedMilliseconds, process = "checker", fault = fault.Kind, target = fault.Target, recoveryMs = fault.RecoveryMilliseconds });
        }
    }

    public void Dispose()
    {
        lock (_sync)
        {
            _writer?.Dispose();
        }
    }

    private void Write(object entry) => _writer?.WriteLine(JsonSerializer.Serialize(entry));

    private static bool TryInt(string text, out int value) => int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value);

    private static bool IsOutcome(string text) => text is "Committed" or "RolledBack" or "HeuristicCommit" or "HeuristicRollback" or "HeuristicMixed" or "HeuristicHazard";
}

/// <summary>What a worker's coordinator counted (its <c>metrics</c> line): committed transactions and how each decision was made.</summary>
internal sealed record CommitPaths(long Committed, long LogDecisions, long MarkerCommits, long Fences, long MarkersRedriven)
{
    public static CommitPaths operator +(CommitPaths a, CommitPaths b) =>
        new(a.Committed + b.Committed, a.LogDecisions + b.LogDecisions, a.MarkerCommits + b.MarkerCommits, a.Fences + b.Fences, a.MarkersRedriven + b.MarkersRedriven);

    /// <summary>Parses <c>metrics committed C log-decisions D marker-commits M fences F markers-redriven R</c>.</summary>
    public static bool TryParse(string line, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out CommitPaths? paths)
    {
        paths = null;
        var p = line.Split(' ');
        if (p is not ["metrics", "committed", var c, "log-decisions", var d, "marker-commits", var m, "fences", var f, "markers-redriven", var r])
        {
            return false;
        }

        long[] values = new long[5];
        string[] texts = [c, d, m, f, r];
        for (var i = 0; i < texts.Length; i++)
        {
            if (!long.TryParse(texts[i], NumberStyles.None, CultureInfo.InvariantCulture, out values[i]))
            {
                return false;
            }
        }

        paths = new CommitPaths(values[0], values[1], values[2], values[3], values[4]);
        return true;
    }
}

/// <summary>One injected fault and, for a process kill, how long the restarted process took to be ready.</summary>
internal sealed record Fault(string Kind, string Target, long? RecoveryMilliseconds);
