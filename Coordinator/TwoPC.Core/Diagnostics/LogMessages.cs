using Microsoft.Extensions.Logging;
using TwoPC.Transactions;

namespace TwoPC.Diagnostics;

/// <summary>
/// Source-generated log messages of the protocol (event ids 1000-1099) and of recovery (3000-3099).
/// The write-ahead log uses 2000-2099 (see <c>TwoPC.Wal.WalLog</c>).
/// </summary>
internal static partial class LogMessages
{
    [LoggerMessage(EventId = 1000, Level = LogLevel.Debug, Message = "Transaction {TransactionId} begun, deadline {Deadline:O}")]
    public static partial void TransactionBegun(this ILogger logger, GlobalTransactionId transactionId, DateTimeOffset deadline);

    [LoggerMessage(EventId = 1001, Level = LogLevel.Debug, Message = "Transaction {TransactionId}: preparing {BranchCount} branches")]
    public static partial void Preparing(this ILogger logger, GlobalTransactionId transactionId, int branchCount);

    [LoggerMessage(EventId = 1002, Level = LogLevel.Debug, Message = "Branch {Xid} ({ResourceManager}) voted {Vote}")]
    public static partial void BranchVoted(this ILogger logger, Xid xid, string resourceManager, Participants.VoteKind vote);

    [LoggerMessage(EventId = 1003, Level = LogLevel.Information, Message = "Branch {Xid} ({ResourceManager}) voted no: {Reason}")]
    public static partial void BranchVotedNo(this ILogger logger, Xid xid, string resourceManager, string reason);

    [LoggerMessage(EventId = 1004, Level = LogLevel.Warning, Message = "Branch {Xid} ({ResourceManager}) failed to prepare; counted as a no vote")]
    public static partial void BranchPrepareFailed(this ILogger logger, Exception exception, Xid xid, string resourceManager);

    [LoggerMessage(EventId = 1005, Level = LogLevel.Debug, Message = "Transaction {TransactionId}: commit decision logged for {BranchCount} branches")]
    public static partial void DecisionLogged(this ILogger logger, GlobalTransactionId transactionId, int branchCount);

    [LoggerMessage(EventId = 1006, Level = LogLevel.Debug, Message = "Branch {Xid} ({ResourceManager}) phase 2 answered {Outcome}")]
    public static partial void BranchCompleted(this ILogger logger, Xid xid, string resourceManager, Participants.BranchOutcome outcome);

    [LoggerMessage(EventId = 1007, Level = LogLevel.Warning, Message = "Branch {Xid} ({ResourceManager}): {Operation} attempt {Attempt} failed; retrying in {Delay}")]
    public static partial void BranchCallRetry(this ILogger logger, Exception? exception, Xid xid, string resourceManager, string operation, int attempt, TimeSpan delay);

    [LoggerMessage(EventId = 1008, Level = LogLevel.Debug, Message = "Transaction {TransactionId} committed")]
    public static partial void TransactionCommitted(this ILogger logger, GlobalTransactionId transactionId);

    [LoggerMessage(EventId = 1009, Level = LogLevel.Information, Message = "Transaction {TransactionId} rolled back: {Reason}")]
    public static partial void TransactionRolledBack(this ILogger logger, GlobalTransactionId transactionId, string reason);

    [LoggerMessage(EventId = 1010, Level = LogLevel.Error, Message = "Transaction {TransactionId} ended with heuristic outcome {Outcome}: {Reason}. It is kept until an operator forgets it")]
    public static partial void HeuristicOutcome(this ILogger logger, GlobalTransactionId transactionId, OutcomeKind outcome, string reason);

    [LoggerMessage(EventId = 1011, Level = LogLevel.Warning, Message = "Transaction {TransactionId} passed its deadline {Deadline:O} before the decision; rolling back")]
    public static partial void DeadlinePassed(this ILogger logger, GlobalTransactionId transactionId, DateTimeOffset deadline);

    [LoggerMessage(EventId = 1012, Level = LogLevel.Critical, Message = "Transaction {TransactionId}: the transaction log failed while forcing the decision; its branches stay in doubt until restart and recovery")]
    public static partial void DecisionLogFailed(this ILogger logger, Exception exception, GlobalTransactionId transactionId);

    [LoggerMessage(EventId = 1013, Level = LogLevel.Warning, Message = "Transaction {TransactionId} timed out while active; rolled back")]
    public static partial void TimedOut(this ILogger logger, GlobalTransactionId transactionId);

    [LoggerMessage(EventId = 1014, Level = LogLevel.Debug, Message = "Transaction {TransactionId}: one branch, committing in one phase")]
    public static partial void OnePhase(this ILogger logger, GlobalTransactionId transactionId);

    [LoggerMessage(EventId = 1015, Level = LogLevel.Warning, Message = "Branch {Xid} ({ResourceManager}) could not be rolled back; recovery will roll it back later (presumed abort)")]
    public static partial void RollbackLeftToRecovery(this ILogger logger, Exception exception, Xid xid, string resourceManager);

    [LoggerMessage(EventId = 1016, Level = LogLevel.Error, Message = "Transaction {TransactionId}: one-phase commit of {Xid} ({ResourceManager}) failed; outcome unknown")]
    public static partial void OnePhaseFailed(this ILogger logger, Exception exception, GlobalTransactionId transactionId, Xid xid, string resourceManager);

    [LoggerMessage(EventId = 1017, Level = LogLevel.Information, Message = "Coordinator {NodeId} started in epoch {Epoch}")]
    public static partial void CoordinatorStarted(this ILogger logger, string nodeId, ulong epoch);

    [LoggerMessage(EventId = 1018, Level = LogLevel.Information, Message = "Coordinator stopping: {Pending} transactions still in flight")]
    public static partial void CoordinatorStopping(this ILogger logger, int pending);

    [LoggerMessage(EventId = 1019, Level = LogLevel.Warning, Message = "Transaction log warning on open: {Warning}")]
    public static partial void LogOpenWarning(this ILogger logger, string warning);

    [LoggerMessage(EventId = 1020, Level = LogLevel.Information, Message = "Transaction {TransactionId} committed at every branch; its END record was not appended ({Why}): a restart repeats its idempotent commits")]
    public static partial void EndNotLogged(this ILogger logger, GlobalTransactionId transactionId, string why);

    [LoggerMessage(EventId = 3000, Level = LogLevel.Information, Message = "Recovery: re-driving phase 2 of {Count} logged commit decisions; {Heuristics} heuristic outcomes on record")]
    public static partial void RecoveryLoaded(this ILogger logger, int count, int heuristics);

    [LoggerMessage(EventId = 3001, Level = LogLevel.Information, Message = "Recovery: rolled back orphan branch {Xid} in {ResourceManager} (no decision logged, age {Age})")]
    public static partial void OrphanRolledBack(this ILogger logger, Xid xid, string resourceManager, TimeSpan age);

    [LoggerMessage(EventId = 3002, Level = LogLevel.Warning, Message = "Recovery: in-doubt branch {Xid} in {ResourceManager} left alone: {Reason}")]
    public static partial void InDoubtLeftAlone(this ILogger logger, Xid xid, string resourceManager, string reason);

    [LoggerMessage(EventId = 3003, Level = LogLevel.Warning, Message = "Recovery: scanning {ResourceManager} failed")]
    public static partial void ResourceScanFailed(this ILogger logger, Exception exception, string resourceManager);

    [LoggerMessage(EventId = 3004, Level = LogLevel.Debug, Message = "Recovery pass finished: {InDoubt} in-doubt branches seen, {RolledBack} rolled back, {LeftAlone} left alone")]
    public static partial void RecoveryPassFinished(this ILogger logger, int inDoubt, int rolledBack, int leftAlone);

    [LoggerMessage(EventId = 3005, Level = LogLevel.Warning, Message = "Recovery: resource manager {ResourceManager} of logged branch {Xid} is not registered; waiting for it")]
    public static partial void ResourceManagerMissing(this ILogger logger, string resourceManager, Xid xid);

    [LoggerMessage(EventId = 3006, Level = LogLevel.Warning, Message = "Heuristic transaction {TransactionId} forgotten by an operator")]
    public static partial void HeuristicForgotten(this ILogger logger, GlobalTransactionId transactionId);

    [LoggerMessage(EventId = 3007, Level = LogLevel.Error, Message = "Recovery pass failed")]
    public static partial void RecoveryPassFailed(this ILogger logger, Exception exception);

    [LoggerMessage(EventId = 3008, Level = LogLevel.Warning, Message = "Operator forced {Action} of branch {Xid} in {ResourceManager}: the resource reports {Outcome}. {Detail}")]
    public static partial void BranchForced(this ILogger logger, string action, Xid xid, string resourceManager, Participants.BranchOutcome outcome, string detail);

    [LoggerMessage(EventId = 3009, Level = LogLevel.Warning, Message = "Operator's forced {Action} of branch {Xid} in {ResourceManager} refused: {Reason}")]
    public static partial void BranchForceRefused(this ILogger logger, string action, Xid xid, string resourceManager, string reason);

    [LoggerMessage(EventId = 3010, Level = LogLevel.Error, Message = "Operator's forced {Action} of branch {Xid} in {ResourceManager} failed; the branch's state is unknown")]
    public static partial void BranchForceFailed(this ILogger logger, Exception? exception, string action, Xid xid, string resourceManager);

    [LoggerMessage(EventId = 3011, Level = LogLevel.Information, Message = "Resource manager {ResourceManager} was not registered; the resource manager resolver supplied it")]
    public static partial void ResourceManagerResolved(this ILogger logger, string resourceManager);

    [LoggerMessage(EventId = 3020, Level = LogLevel.Critical, Message = "Recovery: in-doubt branch {Xid} in {ResourceManager} names this node id but a transaction this coordinator never began ({Why}): another coordinator is using node id {NodeId} on a different log, or this log was restored from an older copy. Node ids must be unique per log; the branch is left alone")]
    public static partial void NodeIdConflict(this ILogger logger, Xid xid, string resourceManager, string nodeId, string why);

    [LoggerMessage(EventId = 3012, Level = LogLevel.Warning, Message = "The resource manager resolver failed for {ResourceManager}")]
    public static partial void ResourceManagerResolverFailed(this ILogger logger, Exception exception, string resourceManager);

    [LoggerMessage(EventId = 3030, Level = LogLevel.Warning, Message = "Took over coordinator node {Node} (lease expired at {ExpiredAt}, fenced at epoch {FencedEpoch}): re-driving {Decisions} logged decisions, {Heuristics} heuristics on record; its orphans are rolled back now ({Elapsed})")]
    public static partial void NodeTakenOver(this ILogger logger, string node, DateTimeOffset expiredAt, ulong fencedEpoch, int decisions, int heuristics, TimeSpan elapsed);

    [LoggerMessage(EventId = 3031, Level = LogLevel.Error, Message = "Looking for coordinator nodes to take over failed; trying again at the next interval")]
    public static partial void TakeoverFailed(this ILogger logger, Exception exception);

    [LoggerMessage(EventId = 3032, Level = LogLevel.Critical, Message = "The transaction log failed or this node was fenced: it takes no other node over any more")]
    public static partial void TakeoversStopped(this ILogger logger, Exception failure);
}
