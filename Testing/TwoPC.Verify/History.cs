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

/// <summary>One injected fault and, for a process kill, how long the restarted process took to be ready.</summary>
internal sealed record Fault(string Kind, string Target, long? RecoveryMilliseconds);
