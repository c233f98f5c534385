using TwoPC.Durability;
using TwoPC.Participants;
using TwoPC.Transactions;

namespace TwoPC.Recovery;

/// <summary>
/// What recovery must know of the coordinator's transactions to tell an orphan from a branch that is live or covered
/// by a decision. The coordinator's transaction table provides it; recovery never reaches into the protocol.
/// </summary>
internal interface ITransactionRecords
{
    /// <summary>Everything live right now: begun here and unfinished, or a logged decision being driven.</summary>
    HashSet<GlobalTransactionId> SnapshotLive();

    bool IsLive(GlobalTransactionId id);

    /// <summary>A logged commit decision whose phase 2 is being (re-)driven.</summary>
    bool IsRecovering(GlobalTransactionId id);

    bool TryGetHeuristic(GlobalTransactionId id, out HeuristicRecord record);
}

/// <summary>How recovery rolls back an orphan: the coordinator's bounded, retried branch call.</summary>
internal interface IOrphanRollback
{
    /// <summary>Rolls back a prepared branch through its resource manager; a few attempts, then throws.</summary>
    ValueTask<BranchOutcome> RollbackPreparedAsync(IResourceManager resourceManager, Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken);
}
