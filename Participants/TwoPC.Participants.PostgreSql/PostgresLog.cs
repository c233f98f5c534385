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

    [LoggerMessage(EventId = 4002, Level = LogLevel.Debug, Message = "Branch {Xid} prepared (transaction {TransactionId})")]
    public static partial void Prepared(this ILogger logger, Xid xid, ulong transactionId);

    [LoggerMessage(EventId = 4003, Level = LogLevel.Information, Message = "Branch {Xid} votes no: {Reason}")]
    public static partial void VotedNo(this ILogger logger, Xid xid, string reason);

    [LoggerMessage(EventId = 4004, Level = LogLevel.Debug, Message = "Branch {Xid} wrote nothing: finished and voting read-only")]
    public static partial void ReadOnly(this ILogger logger, Xid xid);

    [LoggerMessage(EventId = 4009, Level = LogLevel.Information, Message = "Branch {Xid}: {Operation} PREPARED repeated (a re-drive after a crash or a retry); it was already {Outcome}: {Evidence}")]
    public static partial void AlreadyDone(this ILogger logger, Xid xid, string operation, BranchOutcome outcome, string evidence);

    [LoggerMessage(EventId = 4005, Level = LogLevel.Warning, Message = "Branch {Xid}: {Operation} PREPARED found no prepared transaction; {Evidence}: reporting {Outcome}")]
    public static partial void AlreadyResolved(this ILogger logger, Xid xid, string operation, string evidence, BranchOutcome outcome);

    [LoggerMessage(EventId = 4008, Level = LogLevel.Warning, Message = "Branch {Xid}: rolled back by terminating its session (backend {Pid}) because it was still in use at the deadline")]
    public static partial void BackendTerminated(this ILogger logger, Xid xid, int pid);

    [LoggerMessage(EventId = 4007, Level = LogLevel.Warning, Message = "Branch {Xid}: the connection failed while PREPARE TRANSACTION was in flight; the branch may be prepared")]
    public static partial void PrepareOutcomeUnknown(this ILogger logger, Exception exception, Xid xid);

    [LoggerMessage(EventId = 4010, Level = LogLevel.Warning, Message = "PostgreSQL resource manager {Name}: the server cannot be reached now; its checks run on first use and every operation fails until it can be reached")]
    public static partial void ServerUnreachableAtStart(this ILogger logger, Exception exception, string name);

    [LoggerMessage(EventId = 4011, Level = LogLevel.Debug, Message = "PostgreSQL resource manager {Name}: the server check failed, attempt {Attempt} follows")]
    public static partial void CheckRetry(this ILogger logger, Exception? exception, string name, int attempt);

    [LoggerMessage(EventId = 4012, Level = LogLevel.Information, Message = "Branch {Xid}: one-phase commit rolled back before COMMIT was sent: {Reason}")]
    public static partial void OnePhaseRolledBackBeforeCommit(this ILogger logger, Xid xid, string reason);

    [LoggerMessage(EventId = 4013, Level = LogLevel.Warning, Message = "Branch {Xid}: the answer to COMMIT was lost; asking PostgreSQL what became of transaction {TransactionId}")]
    public static partial void OnePhaseCommitInterrupted(this ILogger logger, Exception exception, Xid xid, ulong transactionId);

    [LoggerMessage(EventId = 4014, Level = LogLevel.Information, Message = "Branch {Xid}: pg_xact_status({TransactionId}) is {Status} after the interrupted COMMIT: {Outcome}")]
    public static partial void OnePhaseResolved(this ILogger logger, Xid xid, ulong transactionId, string status, BranchOutcome outcome);

    [LoggerMessage(EventId = 4015, Level = LogLevel.Error, Message = "Branch {Xid} ({Name}): PREPARE TRANSACTION found its gid in use. Another coordinator may be using node id '{Node}' with a different log; node ids must be unique")]
    public static partial void GidInUse(this ILogger logger, Xid xid, string name, string node);

    [LoggerMessage(EventId = 4016, Level = LogLevel.Warning, Message = "PostgreSQL resource manager {Name}: transaction {TransactionId} from the recovery data is unknown to this server ({Message}); reporting the outcome as unknown")]
    public static partial void TransactionIdFromTheFuture(this ILogger logger, string name, ulong transactionId, string message);

    [LoggerMessage(EventId = 4020, Level = LogLevel.Information, Message = "PostgreSQL resource manager {Name}: commit marker table {Table} ready")]
    public static partial void MarkersReady(this ILogger logger, string name, string table);

    [LoggerMessage(EventId = 4021, Level = LogLevel.Information, Message = "Branch {Xid}: the commit with marker for {TransactionId} was refused: {Reason}")]
    public static partial void MarkerRefused(this ILogger logger, Xid xid, string transactionId, string reason);

    [LoggerMessage(EventId = 4022, Level = LogLevel.Warning, Message = "Branch {Xid}: the answer to the commit with marker for {TransactionId} was lost")]
    public static partial void MarkerCommitInterrupted(this ILogger logger, Exception exception, Xid xid, string transactionId);

    [LoggerMessage(EventId = 4023, Level = LogLevel.Information, Message = "PostgreSQL resource manager {Name}: purged {Count} aborted (fence) markers older than {Retention}")]
    public static partial void FencesPurged(this ILogger logger, string name, int count, TimeSpan retention);
}
