using Microsoft.Extensions.Logging;
using TwoPC.Transactions;

namespace TwoPC.Participants.PostgreSql;

/// <summary>Log messages of the PostgreSQL participant (event ids 4000-4099).</summary>
internal static partial class PostgresLog
{
    [LoggerMessage(EventId = 4000, Level = LogLevel.Information, Message = "PostgreSQL resource manager {Name} ready: max_prepared_transactions = {MaxPrepared}, max_connections = {MaxConnections}")]
    public static partial void Ready(this ILogger logger, string name, int maxPrepared, int maxConnections);

    [LoggerMessage(EventId = 4001, Level = LogLevel.Warning, Message = "PostgreSQL resource manager {Name}: max_prepared_transactions = {MaxPrepared} is below the connection pool size {PoolSize}; prepares beyond it will fail")]
    public static partial void FewPreparedTransactions(this ILogger logger, string name, int maxPrepared, int poolSize);

    [LoggerMessage(EventId = 4002, Level = LogLevel.Debug, Message = "Branch {Xid} prepared")]
    public static partial void Prepared(this ILogger logger, Xid xid);

    [LoggerMessage(EventId = 4003, Level = LogLevel.Information, Message = "Branch {Xid} votes no: {Reason}")]
    public static partial void VotedNo(this ILogger logger, Xid xid, string reason);

    [LoggerMessage(EventId = 4004, Level = LogLevel.Debug, Message = "Branch {Xid} wrote nothing: committed and voting read-only")]
    public static partial void ReadOnly(this ILogger logger, Xid xid);

    [LoggerMessage(EventId = 4009, Level = LogLevel.Information, Message = "Branch {Xid}: {Operation} PREPARED repeated (a re-drive after a crash or a retry); the marker row says it was already {Outcome}")]
    public static partial void AlreadyDone(this ILogger logger, Xid xid, string operation, BranchOutcome outcome);

    [LoggerMessage(EventId = 4005, Level = LogLevel.Warning, Message = "Branch {Xid}: {Operation} PREPARED found no prepared transaction; marker row {Marker} says it was {Outcome}")]
    public static partial void AlreadyResolved(this ILogger logger, Xid xid, string operation, string marker, BranchOutcome outcome);

    [LoggerMessage(EventId = 4006, Level = LogLevel.Debug, Message = "Resource manager {Name}: deleted {Count} expired marker rows")]
    public static partial void MarkersDeleted(this ILogger logger, string name, int count);

    [LoggerMessage(EventId = 4008, Level = LogLevel.Warning, Message = "Branch {Xid}: rolled back by terminating its session (backend {Pid}) because it was still in use at the deadline")]
    public static partial void BackendTerminated(this ILogger logger, Xid xid, int pid);

    [LoggerMessage(EventId = 4007, Level = LogLevel.Warning, Message = "Branch {Xid}: the connection failed while PREPARE TRANSACTION was in flight; the branch may be prepared")]
    public static partial void PrepareOutcomeUnknown(this ILogger logger, Exception exception, Xid xid);
}
