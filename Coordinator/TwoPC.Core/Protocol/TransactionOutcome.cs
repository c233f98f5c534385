using System.Text;
using TwoPC.Participants;
using TwoPC.Transactions;

namespace TwoPC.Protocol;

/// <summary>The outcome of a global transaction reported to the caller of commit or rollback.</summary>
/// <param name="TransactionId">The global transaction.</param>
/// <param name="Kind">Committed, rolled back, or a heuristic outcome.</param>
/// <param name="Reason">Why it rolled back or went heuristic (for example which branch voted no), else <see langword="null"/>.</param>
/// <param name="Branches">Each branch's vote and outcome.</param>
public sealed record TransactionOutcome(GlobalTransactionId TransactionId, OutcomeKind Kind, string? Reason, IReadOnlyList<BranchReport> Branches)
{
    /// <summary>Why it rolled back or went heuristic, cut to <see cref="ReasonText.MaxLength"/> characters (it may quote a participant).</summary>
    public string? Reason { get; init => field = ReasonText.Truncate(value); } = ReasonText.Truncate(Reason);

    /// <summary><see langword="true"/> for every heuristic outcome (the branches did not all follow the decision).</summary>
    public bool IsHeuristic => Kind is OutcomeKind.HeuristicCommit or OutcomeKind.HeuristicRollback or OutcomeKind.HeuristicMixed or OutcomeKind.HeuristicHazard;

    // The record's generated text would print the list's type name ("BranchReport[]"): write each branch instead, as
    // "orders <xid> vote Yes, Committed" (no vote: not asked or no answer; no phase 2: read-only or voted no).
    private bool PrintMembers(StringBuilder builder)
    {
        builder.Append("TransactionId = ").Append(TransactionId)
            .Append(", Kind = ").Append(Kind)
            .Append(", Reason = ").Append(Reason)
            .Append(", Branches = [");
        for (var i = 0; i < Branches.Count; i++)
        {
            var branch = Branches[i];
            builder.Append(i == 0 ? string.Empty : "; ")
                .Append(branch.ResourceManager).Append(' ').Append(branch.Xid)
                .Append(branch.Vote is { } vote ? " vote " + vote : " no vote")
                .Append(", ").Append(branch.Outcome is { } outcome ? outcome.ToString() : "no phase 2");
        }

        builder.Append("], IsHeuristic = ").Append(IsHeuristic);
        return true;
    }
}
