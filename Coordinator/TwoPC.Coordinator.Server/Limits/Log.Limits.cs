namespace TwoPC.Coordinator.Server;

/// <summary>Resource limits (event ids 6200-6299).</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 6200, Level = LogLevel.Warning, Message = "Begin refused by {Limit} (client {Owner}, {Held} live transactions); {Refused} begins refused since the last warning")]
    public static partial void LiveTransactionsRefused(ILogger logger, string limit, string owner, int held, long refused);

    [LoggerMessage(EventId = 6201, Level = LogLevel.Warning, Message = "Branch of {TransactionId} refused: it has {Max} branches (Coordinator:Limits:MaxBranchesPerTransaction)")]
    public static partial void BranchRefused(ILogger logger, TwoPC.Transactions.GlobalTransactionId transactionId, int max);

    [LoggerMessage(EventId = 6202, Level = LogLevel.Warning, Message = "{Method} {Path} answered {Status}: {Detail}")]
    public static partial void CoordinatorCannotDecide(ILogger logger, string method, string path, int status, string detail);

    [LoggerMessage(EventId = 6203, Level = LogLevel.Debug, Message = "{Method} {Path} rejected with {Status}: {Detail}")]
    public static partial void BadRequestRejected(ILogger logger, string method, string path, int status, string detail);

    [LoggerMessage(EventId = 6204, Level = LogLevel.Warning, Message = "Coordinator:Limits:MaxConcurrentConnections is {Max} but the process may open only {Limit} files: a flood of connections can exhaust the descriptors the log and participant calls need. Lower the setting or raise the limit (ulimit -n)")]
    public static partial void ConnectionLimitAboveFileLimit(ILogger logger, int max, long limit);

    [LoggerMessage(EventId = 6205, Level = LogLevel.Information, Message = "Limits: {MaxConnections} connections, {MaxBody} bytes per request body, {MaxBranches} branches per transaction, {MaxLive} live transactions ({MaxLivePerClient} per client)")]
    public static partial void LimitsInEffect(ILogger logger, int maxConnections, long maxBody, int maxBranches, int maxLive, int maxLivePerClient);
}
