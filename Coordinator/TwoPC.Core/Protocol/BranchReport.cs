using TwoPC.Participants;
using TwoPC.Transactions;

namespace TwoPC.Protocol;

/// <summary>The outcome of one branch within a <see cref="TransactionOutcome"/>.</summary>
/// <param name="ResourceManager">The resource manager's registered name.</param>
/// <param name="Xid">The branch's XID.</param>
/// <param name="Vote">The branch's vote, or <see langword="null"/> when it was not asked (or did not answer).</param>
/// <param name="Outcome">What became of the branch, or <see langword="null"/> when it took no part in phase 2 (read-only, or voted no).</param>
public sealed record BranchReport(string ResourceManager, Xid Xid, VoteKind? Vote, BranchOutcome? Outcome);
