using Microsoft.Extensions.Logging;
using TwoPC.Transactions;

namespace TwoPC.Diagnostics;

/// <summary>Log messages of the last-resource commit and its recovery (event ids 1300-1319).</summary>
internal static partial class LastResourceLog
{
    [LoggerMessage(EventId = 1300, Level = LogLevel.Debug, Message = "Transaction {TransactionId}: last-resource commit, {LastResource} decides; preparing {BranchCount} other branches")]
    public static partial void LastResourceChosen(this ILogger logger, GlobalTransactionId transactionId, string lastResource, int branchCount);

    [LoggerMessage(EventId = 1301, Level = LogLevel.Debug, Message = "Transaction {TransactionId}: committed with its marker in {LastResource}; committing {BranchCount} prepared branches")]
    public static partial void MarkerCommitted(this ILogger logger, GlobalTransactionId transactionId, string lastResource, int branchCount);

    [LoggerMessage(EventId = 1302, Level = LogLevel.Information, Message = "Transaction {TransactionId}: {LastResource} refused the commit with its marker: {Reason}")]
    public static partial void MarkerRefused(this ILogger logger, GlobalTransactionId transactionId, string lastResource, string reason);

    [LoggerMessage(EventId = 1303, Level = LogLevel.Warning, Message = "Transaction {TransactionId}: the answer to the commit with its marker in {LastResource} was lost; fencing to learn the outcome")]
    public static partial void MarkerCommitUnknown(this ILogger logger, Exception exception, GlobalTransactionId transactionId, string lastResource);

    [LoggerMessage(EventId = 1304, Level = LogLevel.Information, Message = "Transaction {TransactionId}: fenced in {LastResource}: {State}")]
    public static partial void Fenced(this ILogger logger, GlobalTransactionId transactionId, string lastResource, Participants.MarkerState state);

    [LoggerMessage(EventId = 1305, Level = LogLevel.Warning, Message = "Transaction {TransactionId}: fencing in {LastResource} failed; the branch stays in doubt until the next try")]
    public static partial void FenceFailed(this ILogger logger, Exception exception, GlobalTransactionId transactionId, string lastResource);

    [LoggerMessage(EventId = 1306, Level = LogLevel.Information, Message = "Recovery: committed marker of transaction {TransactionId} in {LastResource}; re-driving phase 2 of {BranchCount} branches")]
    public static partial void MarkerRedriven(this ILogger logger, GlobalTransactionId transactionId, string lastResource, int branchCount);

    [LoggerMessage(EventId = 1307, Level = LogLevel.Warning, Message = "Recovery: reading the commit markers of {LastResource} failed; retried next pass")]
    public static partial void MarkerScanFailed(this ILogger logger, Exception exception, string lastResource);

    [LoggerMessage(EventId = 1308, Level = LogLevel.Debug, Message = "Deleted {Count} finished commit markers in {LastResource}")]
    public static partial void MarkersDeleted(this ILogger logger, int count, string lastResource);

    [LoggerMessage(EventId = 1309, Level = LogLevel.Warning, Message = "Deleting {Count} finished commit markers in {LastResource} failed; retried later")]
    public static partial void MarkerDeletionFailed(this ILogger logger, Exception exception, int count, string lastResource);

    [LoggerMessage(EventId = 1310, Level = LogLevel.Error, Message = "Recovery: the committed marker of transaction {TransactionId} in {LastResource} cannot be read ({Message}); left alone")]
    public static partial void MarkerUnreadable(this ILogger logger, GlobalTransactionId transactionId, string lastResource, string message);

    [LoggerMessage(EventId = 1311, Level = LogLevel.Warning, Message = "Recovery: orphan {Xid} ({ResourceManager}) of a last-resource transaction names a last resource no registered commit-markable resource manager hashes to; left in doubt")]
    public static partial void LastResourceUnknown(this ILogger logger, Xid xid, string resourceManager);
}
