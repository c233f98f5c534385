namespace TwoPC.Recovery;

/// <summary>What a branch found by a recovery scan was, and what recovery did with it.</summary>
public enum InDoubtResolution
{
    /// <summary>A logged commit decision covers it; phase 2 is (re-)driving it.</summary>
    Committing,

    /// <summary>It belongs to a transaction still live in this process.</summary>
    Live,

    /// <summary>An orphan of this node (no decision logged, not live, older than the safety interval): rolled back.</summary>
    RolledBack,

    /// <summary>An orphan of this node that is younger than the safety interval: looked at again in a later pass.</summary>
    TooYoung,

    /// <summary>Another coordinator node's branch, or not a TwoPC XID: not ours to decide.</summary>
    Foreign,

    /// <summary>Its transaction has a heuristic outcome on record: an operator decides.</summary>
    Heuristic,

    /// <summary>Rolling it back failed; retried in the next pass.</summary>
    Failed,

    /// <summary>
    /// It names this node but a transaction this coordinator never began (a later epoch, or a sequence not yet
    /// issued): another coordinator uses the same node id on a different log, or the log was restored from an
    /// older copy. Left alone: presuming it aborted could undo another coordinator's commit.
    /// </summary>
    NodeIdConflict,
}
