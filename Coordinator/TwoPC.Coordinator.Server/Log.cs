using TwoPC.Client;

namespace TwoPC.Coordinator.Server;

/// <summary>Admin actions (event ids 6000-6099).</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 6000, Level = LogLevel.Warning, Message = "Admin request to {Path} refused: {Reason}")]
    public static partial void AdminRefused(ILogger logger, string path, string reason);

    [LoggerMessage(EventId = 6001, Level = LogLevel.Information, Message = "Admin listed heuristic outcomes: {Count} on record")]
    public static partial void AdminListedHeuristics(ILogger logger, int count);

    [LoggerMessage(EventId = 6002, Level = LogLevel.Warning, Message = "Admin forgot the heuristic outcome of {TransactionId}")]
    public static partial void AdminForgotHeuristic(ILogger logger, TwoPC.Transactions.GlobalTransactionId transactionId);

    [LoggerMessage(EventId = 6003, Level = LogLevel.Information, Message = "Admin asked to forget {TransactionId}, which has no heuristic outcome on record")]
    public static partial void AdminForgetNotFound(ILogger logger, TwoPC.Transactions.GlobalTransactionId transactionId);

    [LoggerMessage(EventId = 6004, Level = LogLevel.Information, Message = "Admin ran a recovery pass: {Branches} in-doubt branches seen, {LeftInDoubt} left in doubt, {Failed} resource managers failed")]
    public static partial void AdminRecovered(ILogger logger, int branches, int leftInDoubt, int failed);

    [LoggerMessage(EventId = 6005, Level = LogLevel.Information, Message = "Admin listed in-doubt branches: {Count} waiting")]
    public static partial void AdminListedInDoubt(ILogger logger, int count);

    [LoggerMessage(EventId = 6006, Level = LogLevel.Warning, Message = "Admin forced {Action} of branch {Xid} in {ResourceManager}: {Outcome}")]
    public static partial void AdminForcedBranch(ILogger logger, string action, string xid, string resourceManager, BranchOutcomeDto outcome);

    [LoggerMessage(EventId = 6007, Level = LogLevel.Warning, Message = "Admin's forced {Action} of branch {Xid} in {ResourceManager} refused ({Status}): {Reason}")]
    public static partial void AdminForceRefused(ILogger logger, string action, string xid, string resourceManager, int status, string reason);

    [LoggerMessage(EventId = 6008, Level = LogLevel.Error, Message = "Admin's forced {Action} of branch {Xid} in {ResourceManager} failed: {Reason}")]
    public static partial void AdminForceFailed(ILogger logger, string action, string xid, string resourceManager, string reason);

    [LoggerMessage(EventId = 6009, Level = LogLevel.Information, Message = "Admin request to {Path} rejected as malformed: {Reason}")]
    public static partial void AdminBadRequest(ILogger logger, string path, string reason);
}
