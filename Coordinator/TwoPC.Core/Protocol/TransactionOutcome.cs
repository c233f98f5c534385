using TwoPC.Participants;
using TwoPC.Transactions;

namespace TwoPC.Protocol;

/// <summary>How a global transaction ended, from the caller's point of view.</summary>
public enum OutcomeKind
{
    /// <summary>Every branch committed.</summary>
    Committed,

    /// <summary>Every branch rolled back (a No vote, a failed or late prepare, a timeout, or an explicit rollback).</summary>
    RolledBack,

    /// <summary>The decision was rollback but every branch that answered reports it committed (XA HEURCOM).</summary>
    HeuristicCommit,

    /// <summary>The decision was commit but every branch that answered reports it rolled back (XA HEURRB).</summary>
    HeuristicRollback,

    /// <summary>Some branches committed and some rolled back (XA HEURMIX).</summary>
    HeuristicMixed,

    /// <summary>The outcome of some branches is unknown (XA HEURHAZ), for example a one-phase commit whose answer was lost.</summary>
    HeuristicHazard,
}

/// <summary>The outcome of one branch within a <see cref="TransactionOutcome"/>.</summary>
/// <param name="ResourceManager">The resource manager's registered name.</param>
/// <param name="Xid">The branch's XID.</param>
/// <param name="Vote">The branch's vote, or <see langword="null"/> when it was not asked (or did not answer).</param>
/// <param name="Outcome">What became of the branch, or <see langword="null"/> when it took no part in phase 2 (read-only, or voted no).</param>
public sealed record BranchReport(string ResourceManager, Xid Xid, VoteKind? Vote, BranchOutcome? Outcome);

/// <summary>The outcome of a global transaction reported to the caller of commit or rollback.</summary>
/// <param name="TransactionId">The global transaction.</param>
/// <param name="Kind">Committed, rolled back, or a heuristic outcome.</param>
/// <param name="Reason">Why it rolled back or went heuristic (for example which branch voted no), else <see langword="null"/>.</param>
/// <param name="Branches">Each branch's vote and outcome.</param>
public sealed record TransactionOutcome(GlobalTransactionId TransactionId, OutcomeKind Kind, string? Reason, IReadOnlyList<BranchReport> Branches)
{
    /// <summary><see langword="true"/> for every heuristic outcome (the branches did not all follow the decision).</summary>
    public bool IsHeuristic => Kind is OutcomeKind.HeuristicCommit or OutcomeKind.HeuristicRollback or OutcomeKind.HeuristicMixed or OutcomeKind.HeuristicHazard;
}
