using TwoPC.Participants;
using TwoPC.Transactions;

namespace TwoPC.Recovery;

/// <summary>The result of <c>TransactionCoordinator.ForceCommitBranchAsync</c> or <c>TransactionCoordinator.ForceRollbackBranchAsync</c>.</summary>
/// <param name="Action">What the operator asked for.</param>
/// <param name="ResourceManager">The resource manager named.</param>
/// <param name="Xid">The branch.</param>
/// <param name="Status">Done, refused, unknown resource manager, or failed.</param>
/// <param name="Outcome">What the resource reports became of the branch (when <see cref="ForcedBranchStatus.Completed"/>).</param>
/// <param name="Message">One line for the operator: what happened, or why not.</param>
public sealed record ForcedBranchResult(ForcedAction Action, string ResourceManager, Xid Xid, ForcedBranchStatus Status, BranchOutcome? Outcome, string Message)
{
    /// <summary>One line for the operator, cut to <see cref="ReasonText.MaxLength"/> characters (it may quote the resource's error).</summary>
    public string Message { get; init => field = ReasonText.Truncate(value) ?? string.Empty; } = ReasonText.Truncate(Message) ?? string.Empty;

    /// <summary><see langword="true"/> when the branch ended as asked (committed for a commit, rolled back for a rollback).</summary>
    public bool Succeeded => Status == ForcedBranchStatus.Completed && Outcome == (Action == ForcedAction.Commit ? BranchOutcome.Committed : BranchOutcome.RolledBack);
}
