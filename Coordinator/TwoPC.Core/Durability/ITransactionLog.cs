using TwoPC.Participants;
using TwoPC.Transactions;

namespace TwoPC.Durability;

/// <summary>A branch as the commit decision records it: enough to reach the resource again after a restart.</summary>
/// <param name="ResourceManager">The resource manager's registered name.</param>
/// <param name="Xid">The branch's XID.</param>
/// <param name="RecoveryData">The opaque data the branch returned with its Yes vote.</param>
public sealed record LoggedBranch(string ResourceManager, Xid Xid, ReadOnlyMemory<byte> RecoveryData);

/// <summary>The commit decision of one global transaction (the "intentions list"), forced to the log before phase 2.</summary>
/// <param name="TransactionId">The global transaction.</param>
/// <param name="DecidedAt">When the decision was taken.</param>
/// <param name="Branches">Every branch that voted yes and must be committed.</param>
public sealed record CommitDecision(GlobalTransactionId TransactionId, DateTimeOffset DecidedAt, IReadOnlyList<LoggedBranch> Branches);

/// <summary>A heuristic outcome, kept in the log until an operator forgets it.</summary>
/// <param name="TransactionId">The global transaction.</param>
/// <param name="RecordedAt">When the heuristic was detected.</param>
/// <param name="Kind">Which heuristic outcome.</param>
/// <param name="Reason">What was observed.</param>
/// <param name="Branches">Each branch with its outcome (<see langword="null"/> when unknown).</param>
public sealed record HeuristicRecord(GlobalTransactionId TransactionId, DateTimeOffset RecordedAt, OutcomeKind Kind, string Reason, IReadOnlyList<HeuristicBranch> Branches)
{
    /// <summary>What was observed, cut to <see cref="ReasonText.MaxLength"/> characters (it is logged and kept until forgotten).</summary>
    public string Reason { get; init => field = ReasonText.Truncate(value) ?? string.Empty; } = ReasonText.Truncate(Reason) ?? string.Empty;
}

/// <summary>A branch of a heuristic transaction.</summary>
/// <param name="ResourceManager">The resource manager's registered name.</param>
/// <param name="Xid">The branch's XID.</param>
/// <param name="Outcome">What the resource reported, or <see langword="null"/> when unknown.</param>
/// <param name="RecoveryData">
/// The opaque data the branch returned with its Yes vote (empty when it had none): kept with the heuristic so that an
/// operator's forced commit or rollback can still reach the resource (a remote participant's callback URL).
/// </param>
public sealed record HeuristicBranch(string ResourceManager, Xid Xid, BranchOutcome? Outcome, ReadOnlyMemory<byte> RecoveryData = default)
{
    /// <summary>Equal when every field is, the recovery data compared by content.</summary>
    public bool Equals(HeuristicBranch? other) =>
        other is not null
        && string.Equals(ResourceManager, other.ResourceManager, StringComparison.Ordinal)
        && Xid == other.Xid
        && Outcome == other.Outcome
        && RecoveryData.Span.SequenceEqual(other.RecoveryData.Span);

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(ResourceManager, Xid, Outcome, RecoveryData.Length);
}

/// <summary>What a transaction log found when it was opened: the state recovery must finish.</summary>
/// <param name="Epoch">The new epoch of this start, durably recorded and larger than every earlier one.</param>
/// <param name="PendingDecisions">Commit decisions without an END record: phase 2 must be driven again.</param>
/// <param name="Heuristics">Heuristic outcomes not yet forgotten.</param>
/// <param name="Warnings">What the log repaired on open (for example a torn tail it truncated), for the operator.</param>
public sealed record LogRecoveryState(ulong Epoch, IReadOnlyList<CommitDecision> PendingDecisions, IReadOnlyList<HeuristicRecord> Heuristics, IReadOnlyList<string> Warnings);

/// <summary>
/// The coordinator's durable log. Under presumed abort it only ever holds commit decisions,
/// END records that close them, and heuristic outcomes; rollbacks are never logged.
/// </summary>
/// <remarks>
/// The file-based write-ahead log (<c>TwoPC.Wal.FileTransactionLog</c>) implements it for one node;
/// a shared, database-backed implementation serves highly available coordinators. Implementations are
/// fail-stop: after a write or flush error every later call throws <see cref="TransactionLogFailedException"/>,
/// and nothing acknowledged before the error is lost.
/// </remarks>
public interface ITransactionLog : IAsyncDisposable
{
    /// <summary>Opens the log: takes exclusive ownership, reads and verifies it, and durably starts a new epoch.</summary>
    ValueTask<LogRecoveryState> OpenAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Opens the log for the coordinator node <paramref name="node"/>, as <see cref="OpenAsync(CancellationToken)"/>.
    /// A log that records which node writes it refuses another node (transaction ids, XIDs and markers carry
    /// the node id, so a renamed coordinator would not recognise its own branches) and records the node on
    /// first use. The default ignores the node id, for logs that do not record it.
    /// </summary>
    /// <param name="node">The coordinator's node id.</param>
    /// <param name="cancellationToken">Cancels the open.</param>
    ValueTask<LogRecoveryState> OpenAsync(NodeId node, CancellationToken cancellationToken) => OpenAsync(cancellationToken);

    /// <summary>Forces a commit decision to stable storage; returns once it is durable.</summary>
    /// <remarks>Deliberately not cancellable: once the record is handed over, its durability is the decision.</remarks>
    ValueTask LogCommitDecisionAsync(CommitDecision decision);

    /// <summary>Forces a heuristic outcome to stable storage.</summary>
    ValueTask LogHeuristicAsync(HeuristicRecord record);

    /// <summary>
    /// Appends an END record for a transaction (phase 2 finished, or its heuristic was forgotten)
    /// without waiting for it to be durable: a lost END only makes recovery repeat an idempotent commit.
    /// </summary>
    void LogEnd(GlobalTransactionId transactionId);

    /// <summary>The error that stopped the log, or <see langword="null"/> while it is healthy.</summary>
    Exception? Failure { get; }
}

/// <summary>
/// The transaction log failed (an I/O or flush error, a full disk) and stopped accepting records.
/// Decisions acknowledged before the failure are safe; a decision being written when it failed may
/// or may not be durable, so its branches stay in doubt until the coordinator restarts and recovers.
/// </summary>
public sealed class TransactionLogFailedException : Exception
{
    /// <summary>Creates the exception.</summary>
    public TransactionLogFailedException() : base("The transaction log has failed.") { }

    /// <summary>Creates the exception with a message.</summary>
    public TransactionLogFailedException(string message) : base(message) { }

    /// <summary>Creates the exception with a message and the I/O error that caused it.</summary>
    public TransactionLogFailedException(string message, Exception innerException) : base(message, innerException) { }
}

/// <summary>The log is corrupt in a way recovery must not paper over (a bad record followed by good ones).</summary>
public sealed class TransactionLogCorruptedException : Exception
{
    /// <summary>Creates the exception.</summary>
    public TransactionLogCorruptedException() : base("The transaction log is corrupt.") { }

    /// <summary>Creates the exception with a message naming the file and offset.</summary>
    public TransactionLogCorruptedException(string message) : base(message) { }

    /// <summary>Creates the exception with an inner exception.</summary>
    public TransactionLogCorruptedException(string message, Exception innerException) : base(message, innerException) { }
}
