using TwoPC.Transactions;

namespace TwoPC.Participants.Remote;

/// <summary>What participant-side recovery did with one prepared branch.</summary>
public enum RemoteRecoveryAction
{
    /// <summary>Nothing (not this coordinator's, still working, undecided, heuristic, or the coordinator was unreachable).</summary>
    LeftAlone,

    /// <summary>COMMIT PREPARED: the coordinator logged a commit decision.</summary>
    Committed,

    /// <summary>ROLLBACK PREPARED: the coordinator rolled back, or has no record and the branch is past the safety interval.</summary>
    RolledBack,
}

/// <summary>One prepared branch seen by participant-side recovery.</summary>
/// <param name="Xid">The branch.</param>
/// <param name="CoordinatorState">The coordinator's state of its transaction (or why it was not asked).</param>
/// <param name="Action">What was done.</param>
public sealed record RemoteRecoveryResult(Xid Xid, string CoordinatorState, RemoteRecoveryAction Action);
