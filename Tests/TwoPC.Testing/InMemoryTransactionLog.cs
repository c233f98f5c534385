using System.Collections.Concurrent;
using TwoPC.Durability;
using TwoPC.Transactions;

namespace TwoPC.Testing;

/// <summary>
/// An in-memory <see cref="ITransactionLog"/> for protocol unit tests: it keeps what a durable log
/// would, survives "restarts" (open it again after the coordinator is disposed), and can fail on demand.
/// </summary>
public sealed class InMemoryTransactionLog : ITransactionLog
{
    private readonly ConcurrentDictionary<GlobalTransactionId, CommitDecision> _decisions = new();
    private readonly ConcurrentDictionary<GlobalTransactionId, HeuristicRecord> _heuristics = new();
    private readonly ConcurrentQueue<string> _records = new();
    private ulong _epoch;

    /// <summary>Whether <see cref="Records"/> keeps every record (tests) or nothing (benchmarks). Default true.</summary>
    public bool KeepHistory { get; init; } = true;

    /// <summary>When set, the next forced write fails with this exception and the log stops (fail-stop).</summary>
    public Exception? FailNextForce { get; set; }

    /// <summary>Every record appended, in order ("decision id", "end id", "heuristic id").</summary>
    public IReadOnlyList<string> Records => [.. _records];

    /// <summary>Pending commit decisions.</summary>
    public IReadOnlyDictionary<GlobalTransactionId, CommitDecision> Decisions => _decisions;

    /// <inheritdoc />
    public Exception? Failure { get; private set; }

    /// <inheritdoc />
    public ValueTask<LogRecoveryState> OpenAsync(CancellationToken cancellationToken)
    {
        Failure = null;
        _epoch++;
        return ValueTask.FromResult(new LogRecoveryState(_epoch, [.. _decisions.Values], [.. _heuristics.Values], []));
    }

    /// <inheritdoc />
    public ValueTask LogCommitDecisionAsync(CommitDecision decision)
    {
        Force("decision " + decision.TransactionId);
        _decisions[decision.TransactionId] = decision;
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask LogHeuristicAsync(HeuristicRecord record)
    {
        Force("heuristic " + record.TransactionId);
        _heuristics[record.TransactionId] = record;
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public void LogEnd(GlobalTransactionId transactionId)
    {
        ThrowIfFailed();
        if (KeepHistory)
        {
            _records.Enqueue("end " + transactionId);
        }

        _decisions.TryRemove(transactionId, out _);
        _heuristics.TryRemove(transactionId, out _);
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    private void Force(string record)
    {
        ThrowIfFailed();
        if (FailNextForce is { } failure)
        {
            FailNextForce = null;
            Failure = failure;
            throw new TransactionLogFailedException("injected log failure", failure);
        }

        if (KeepHistory)
        {
            _records.Enqueue(record);
        }
    }

    private void ThrowIfFailed()
    {
        if (Failure is { } failure)
        {
            throw new TransactionLogFailedException("the log has failed", failure);
        }
    }
}
