using TwoPC.Durability;
using TwoPC.Transactions;
using TwoPC.Wal;

namespace TwoPC.Testing;

/// <summary>
/// An <see cref="ITransactionLog"/> kept in memory, for your own tests of code that runs a
/// <c>TransactionCoordinator</c>: no log directory, no fsync, and a log you can look into (<see cref="Decisions"/>,
/// <see cref="Heuristics"/>, <see cref="Records"/>) or make fail (<see cref="FailNextForce"/>).
/// </summary>
/// <remarks>
/// <para>
/// The instance plays the part of the log directory: disposing it (the coordinator disposes its log) is a shutdown,
/// and opening it again — with a new coordinator over the same instance — is a restart that finds every commit decision
/// without an END and every heuristic not forgotten, under a larger epoch. Nothing survives the process, so never use it
/// where a crash must not lose a decision: production coordinators use <c>TwoPC.Wal.FileTransactionLog</c>.
/// </para>
/// <para>
/// It honours the <see cref="ITransactionLog"/> contract as the file log does (the same contract tests run against both):
/// one opener at a time (<see cref="InvalidOperationException"/> while open), a log opened for one node refuses another
/// (<see cref="TransactionLogNodeMismatchException"/>), calls after dispose throw <see cref="ObjectDisposedException"/>,
/// and it is fail-stop — after a failed force every later call throws <see cref="TransactionLogFailedException"/> until
/// the next open.
/// </para>
/// </remarks>
public sealed class InMemoryTransactionLog : ITransactionLog
{
    private readonly Lock _sync = new();
    private readonly Dictionary<GlobalTransactionId, CommitDecision> _decisions = [];
    private readonly Dictionary<GlobalTransactionId, HeuristicRecord> _heuristics = [];
    private readonly List<string> _records = [];
    private ulong _epoch;
    private string? _node;
    private int _state; // 0 never opened, 1 open, 2 closed (disposed; may be opened again: a restart)
    private Exception? _failure;

    /// <summary>Whether <see cref="Records"/> keeps every record (tests) or nothing (benchmarks). Default <see langword="true"/>.</summary>
    public bool KeepHistory { get; init; } = true;

    /// <summary>
    /// When set, the next forced write (a commit decision or a heuristic) fails with a
    /// <see cref="TransactionLogFailedException"/> wrapping this exception, and the log stops (fail-stop) until it is
    /// opened again.
    /// </summary>
    public Exception? FailNextForce { get; set; }

    /// <summary>Every record appended since the log was created, in order: <c>"decision {id}"</c>, <c>"heuristic {id}"</c>, <c>"end {id}"</c>.</summary>
    public IReadOnlyList<string> Records
    {
        get
        {
            lock (_sync)
            {
                return [.. _records];
            }
        }
    }

    /// <summary>The commit decisions without an END record (what recovery would finish after a restart).</summary>
    public IReadOnlyDictionary<GlobalTransactionId, CommitDecision> Decisions
    {
        get
        {
            lock (_sync)
            {
                return new Dictionary<GlobalTransactionId, CommitDecision>(_decisions);
            }
        }
    }

    /// <summary>The heuristic outcomes not yet forgotten.</summary>
    public IReadOnlyDictionary<GlobalTransactionId, HeuristicRecord> Heuristics
    {
        get
        {
            lock (_sync)
            {
                return new Dictionary<GlobalTransactionId, HeuristicRecord>(_heuristics);
            }
        }
    }

    /// <summary>The epoch of the current (or last) open; 0 before the first.</summary>
    public ulong Epoch
    {
        get
        {
            lock (_sync)
            {
                return _epoch;
            }
        }
    }

    /// <summary>Whether the log is open (a coordinator is using it).</summary>
    public bool IsOpen => Volatile.Read(ref _state) == 1;

    /// <inheritdoc />
    public Exception? Failure
    {
        get
        {
            lock (_sync)
            {
                return _failure;
            }
        }
    }

    /// <inheritdoc />
    /// <exception cref="InvalidOperationException">The log is already open.</exception>
    public ValueTask<LogRecoveryState> OpenAsync(CancellationToken cancellationToken) => Open(null, cancellationToken);

    /// <inheritdoc />
    /// <exception cref="InvalidOperationException">The log is already open.</exception>
    /// <exception cref="TransactionLogNodeMismatchException">The log was opened for another node before.</exception>
    public ValueTask<LogRecoveryState> OpenAsync(NodeId node, CancellationToken cancellationToken) => Open(node.Value, cancellationToken);

    /// <inheritdoc />
    public ValueTask LogCommitDecisionAsync(CommitDecision decision)
    {
        ArgumentNullException.ThrowIfNull(decision);
        lock (_sync)
        {
            Force("decision", decision.TransactionId);
            _decisions[decision.TransactionId] = decision;
        }

        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask LogHeuristicAsync(HeuristicRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        lock (_sync)
        {
            Force("heuristic", record.TransactionId);
            _heuristics[record.TransactionId] = record;
        }

        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    /// <exception cref="TransactionLogFailedException">The log has failed.</exception>
    public void LogEnd(GlobalTransactionId transactionId)
    {
        lock (_sync)
        {
            ThrowIfNotWritable();
            Append("end", transactionId);
            _decisions.Remove(transactionId);
            _heuristics.Remove(transactionId);
        }
    }

    /// <summary>Closes the log (a shutdown). What it holds stays: opening it again is a restart.</summary>
    public ValueTask DisposeAsync()
    {
        lock (_sync)
        {
            if (_state == 1)
            {
                _state = 2;
            }
        }

        return ValueTask.CompletedTask;
    }

    private ValueTask<LogRecoveryState> Open(string? node, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        lock (_sync)
        {
            if (_state == 1)
            {
                throw new InvalidOperationException("The in-memory transaction log is already open; dispose the coordinator that holds it first.");
            }

            if (node is not null)
            {
                if (_node is not null && !string.Equals(_node, node, StringComparison.Ordinal))
                {
                    throw new TransactionLogNodeMismatchException("(in memory)", _node, node);
                }

                _node = node;
            }

            _failure = null;
            _epoch++;
            _state = 1;
            var pending = _decisions.Values.OrderBy(d => d.TransactionId, IdComparer.Instance).ToArray();
            var heuristics = _heuristics.Values.OrderBy(h => h.TransactionId, IdComparer.Instance).ToArray();
            return ValueTask.FromResult(new LogRecoveryState(_epoch, pending, heuristics, []));
        }
    }

    // Called under _sync.
    private void Force(string kind, GlobalTransactionId id)
    {
        ThrowIfNotWritable();
        if (FailNextForce is { } failure)
        {
            FailNextForce = null;
            _failure = failure;
            throw new TransactionLogFailedException("The in-memory transaction log failed (injected by FailNextForce).", failure);
        }

        Append(kind, id);
    }

    private void Append(string kind, GlobalTransactionId id)
    {
        if (KeepHistory)
        {
            _records.Add(kind + " " + id);
        }
    }

    private void ThrowIfNotWritable()
    {
        ObjectDisposedException.ThrowIf(_state == 2, this);
        if (_state == 0)
        {
            throw new InvalidOperationException("The in-memory transaction log is not open; start the coordinator (or call OpenAsync) first.");
        }

        if (_failure is { } failure)
        {
            throw new TransactionLogFailedException("The transaction log has failed.", failure);
        }
    }

    private sealed class IdComparer : IComparer<GlobalTransactionId>
    {
        public static IdComparer Instance { get; } = new();

        public int Compare(GlobalTransactionId x, GlobalTransactionId y)
        {
            var byNode = string.CompareOrdinal(x.Node.Value, y.Node.Value);
            return byNode != 0 ? byNode : x.Epoch != y.Epoch ? x.Epoch.CompareTo(y.Epoch) : x.Sequence.CompareTo(y.Sequence);
        }
    }
}
