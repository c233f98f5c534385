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
}
