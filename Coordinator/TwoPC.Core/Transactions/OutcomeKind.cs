namespace TwoPC.Transactions;

/// <summary>How a global transaction ended, from the caller's point of view.</summary>
/// <remarks>Part of the contract below the protocol: the log records it (heuristic records) and logs name it,
/// so it lives with the transaction ids rather than with the coordinator.</remarks>
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
