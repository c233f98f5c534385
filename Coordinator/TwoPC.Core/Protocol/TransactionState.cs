namespace TwoPC.Protocol;

/// <summary>Where a global transaction is in the protocol.</summary>
public enum TransactionState
{
    /// <summary>Begun; branches may enlist and do work.</summary>
    Active,

    /// <summary>Phase 1: the branches are being asked to prepare.</summary>
    Preparing,

    /// <summary>The commit decision is durable; phase 2 is telling the branches.</summary>
    Committing,

    /// <summary>Rolling back (a No vote, a timeout, or an explicit rollback).</summary>
    RollingBack,

    /// <summary>Every branch committed.</summary>
    Committed,

    /// <summary>Every branch rolled back (or will be, by recovery: presumed abort).</summary>
    RolledBack,

    /// <summary>Ended with a heuristic outcome that an operator must look at and forget.</summary>
    Heuristic,

    /// <summary>The log failed while forcing the decision: the branches stay prepared until the coordinator restarts and recovers.</summary>
    InDoubt,

    /// <summary>The coordinator knows nothing of the transaction (never begun here, or ended long ago). Under presumed abort an unknown transaction past its deadline did not commit.</summary>
    Unknown,
}
