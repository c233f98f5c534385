using TwoPC.Transactions;

namespace TwoPC.Protocol;

/// <summary>What the coordinator knows about one global transaction.</summary>
/// <param name="TransactionId">The transaction.</param>
/// <param name="State">Where it is; <see cref="TransactionState.Unknown"/> when this coordinator has no record.</param>
/// <param name="Outcome">The outcome, once known.</param>
/// <param name="Deadline">Its deadline, while it is live in this process.</param>
/// <param name="Branches">While it is live in this process: its branches (resource manager and XID; during phase 2 also
/// the vote and, once acknowledged, the outcome). <see langword="null"/> otherwise (see <paramref name="Outcome"/>).</param>
public sealed record TransactionStatus(GlobalTransactionId TransactionId, TransactionState State, TransactionOutcome? Outcome, DateTimeOffset? Deadline, IReadOnlyList<BranchReport>? Branches = null);
