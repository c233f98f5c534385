using Microsoft.Extensions.Logging;

namespace TwoPC.Durability.PostgreSql;

/// <summary>Source-generated log messages of the shared PostgreSQL transaction log; event ids 8000-8099.</summary>
internal static partial class PostgreSqlLogMessages
{
    [LoggerMessage(EventId = 8000, Level = LogLevel.Information,
        Message = "Opened shared transaction log (schema {Schema}) for node {Node}: epoch {Epoch}, lease until {ExpiresAt:O}, {PendingDecisions} pending decisions, {Heuristics} heuristics")]
    public static partial void Opened(this ILogger logger, string schema, string node, ulong epoch, DateTimeOffset expiresAt, int pendingDecisions, int heuristics);

    [LoggerMessage(EventId = 8001, Level = LogLevel.Warning,
        Message = "Node {Node} still holds a live lease (another process with this node id, or this node's previous run that died less than a lease ago); waiting for it to expire")]
    public static partial void WaitingForLease(this ILogger logger, string node);

    [LoggerMessage(EventId = 8002, Level = LogLevel.Error,
        Message = "Node {Node}'s lease is still held after {Timeout}; another coordinator runs with this node id")]
    public static partial void LeaseStillHeld(this ILogger logger, string node, TimeSpan timeout);

    [LoggerMessage(EventId = 8003, Level = LogLevel.Critical,
        Message = "Node {Node} was fenced at epoch {Epoch}: another node took over its lease, so the log refused its {What}. It decides nothing more; restart it to rejoin")]
    public static partial void Fenced(this ILogger logger, string node, ulong epoch, string what);

    [LoggerMessage(EventId = 8004, Level = LogLevel.Critical,
        Message = "Shared transaction log of node {Node} failed and stopped accepting records (fail-stop); restart the coordinator to recover")]
    public static partial void Failed(this ILogger logger, string node, Exception exception);

    [LoggerMessage(EventId = 8005, Level = LogLevel.Warning,
        Message = "Shared transaction log: {Operation} failed (attempt {Attempt}), retrying in {Delay}")]
    public static partial void Retrying(this ILogger logger, string operation, int attempt, TimeSpan delay, Exception? exception);

    [LoggerMessage(EventId = 8006, Level = LogLevel.Information,
        Message = "Node {Self} took over node {Node}: fenced at epoch {Epoch}, {PendingDecisions} pending decisions, {Heuristics} heuristics")]
    public static partial void TookOver(this ILogger logger, string self, string node, ulong epoch, int pendingDecisions, int heuristics);

    [LoggerMessage(EventId = 8007, Level = LogLevel.Information,
        Message = "Closed shared transaction log of node {Node} (lease released: {Released})")]
    public static partial void Closed(this ILogger logger, string node, bool released);

    [LoggerMessage(EventId = 8008, Level = LogLevel.Debug,
        Message = "Renewed the lease of node {Node} (epoch {Epoch}) until {ExpiresAt:O}")]
    public static partial void Renewed(this ILogger logger, string node, ulong epoch, DateTimeOffset expiresAt);

    [LoggerMessage(EventId = 8009, Level = LogLevel.Information,
        Message = "Batch of node {Node} committed after a lost connection: {Present} of {Count} decisions were already stored, the rest written again")]
    public static partial void BatchRecovered(this ILogger logger, string node, int present, int count);
}
