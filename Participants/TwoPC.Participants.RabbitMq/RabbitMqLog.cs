using Microsoft.Extensions.Logging;
using TwoPC.Transactions;

namespace TwoPC.Participants.RabbitMq;

/// <summary>Log messages of the RabbitMQ participant (event ids 5000-5099).</summary>
internal static partial class RabbitMqLog
{
    [LoggerMessage(EventId = 5000, Level = LogLevel.Information, Message = "Connection {Name} open to {Endpoint}")]
    public static partial void Connected(this ILogger logger, string name, RabbitMQ.Client.AmqpTcpEndpoint endpoint);

    [LoggerMessage(EventId = 5001, Level = LogLevel.Debug, Message = "Branch {Xid} prepared {Count} staged messages")]
    public static partial void Prepared(this ILogger logger, Xid xid, int count);

    [LoggerMessage(EventId = 5002, Level = LogLevel.Information, Message = "Branch {Xid} votes no: {Reason}")]
    public static partial void VotedNo(this ILogger logger, Xid xid, string reason);

    [LoggerMessage(EventId = 5003, Level = LogLevel.Debug, Message = "Branch {Xid}: {Count} messages published and confirmed")]
    public static partial void Published(this ILogger logger, Xid xid, int count);

    [LoggerMessage(EventId = 5004, Level = LogLevel.Error, Message = "Branch {Xid}: message {MessageId} to exchange '{Exchange}' with routing key '{RoutingKey}' was {Problem}; parked in {ParkingQueue} (heuristic hazard)")]
    public static partial void Parked(this ILogger logger, Xid xid, string messageId, string exchange, string routingKey, string problem, string parkingQueue);

    [LoggerMessage(EventId = 5005, Level = LogLevel.Warning, Message = "Branch {Xid}: publishing failed with an unknown outcome; the coordinator retries with the same message ids")]
    public static partial void PublishUncertain(this ILogger logger, Exception exception, Xid xid);

    [LoggerMessage(EventId = 5006, Level = LogLevel.Warning, Message = "Connection {Name} to {Endpoint} failed (attempt {Attempt}); trying again in {Delay}")]
    public static partial void ConnectFailed(this ILogger logger, Exception exception, string name, RabbitMQ.Client.AmqpTcpEndpoint endpoint, int attempt, TimeSpan delay);

    [LoggerMessage(EventId = 5007, Level = LogLevel.Warning, Message = "Connection {Name} lost ({Reason}); reconnecting")]
    public static partial void ConnectionLost(this ILogger logger, string name, string reason);

    [LoggerMessage(EventId = 5008, Level = LogLevel.Error, Message = "Branch {Xid}: message {MessageId} could not be parked in {ParkingQueue} (heuristic hazard); messages already confirmed are not published again, only the parking is retried")]
    public static partial void ParkingFailed(this ILogger logger, Exception exception, Xid xid, string messageId, string parkingQueue);

    [LoggerMessage(EventId = 5009, Level = LogLevel.Debug, Message = "Branch {Xid}: waiting for the connection to the broker before publishing")]
    public static partial void WaitingForConnection(this ILogger logger, Xid xid);
}

/// <summary>Log messages of the inbox consumer (event ids 5100-5199).</summary>
internal static partial class InboxLog
{
    [LoggerMessage(EventId = 5100, Level = LogLevel.Information, Message = "Inbox consumer '{Consumer}' consuming queue {Queue}")]
    public static partial void ConsumerStarted(this ILogger logger, string queue, string consumer);

    [LoggerMessage(EventId = 5101, Level = LogLevel.Debug, Message = "Message {MessageId} from {Queue} was processed before; acknowledged and skipped")]
    public static partial void Duplicate(this ILogger logger, string messageId, string queue);

    [LoggerMessage(EventId = 5102, Level = LogLevel.Warning, Message = "Handler failed for message {MessageId} from {Queue} (delivery {Delivery}); rolled back and requeued")]
    public static partial void HandlerFailed(this ILogger logger, Exception exception, string messageId, string queue, long delivery);

    [LoggerMessage(EventId = 5103, Level = LogLevel.Error, Message = "Message {MessageId} from {Queue} failed on delivery {Delivery}, the limit; dead-lettering it")]
    public static partial void DeliveryLimitReached(this ILogger logger, Exception exception, string messageId, string queue, long delivery);

    [LoggerMessage(EventId = 5104, Level = LogLevel.Warning, Message = "Message {MessageId} from {Queue} dead-lettered: {Reason}")]
    public static partial void DeadLettered(this ILogger logger, string messageId, string queue, string reason);

    [LoggerMessage(EventId = 5105, Level = LogLevel.Error, Message = "Dead-lettering message {MessageId} from {Queue} failed; requeued instead")]
    public static partial void DeadLetterFailed(this ILogger logger, Exception exception, string messageId, string queue);

    [LoggerMessage(EventId = 5106, Level = LogLevel.Warning, Message = "Inbox cleanup for {Queue} failed")]
    public static partial void CleanupFailed(this ILogger logger, Exception exception, string queue);

    [LoggerMessage(EventId = 5107, Level = LogLevel.Warning, Message = "The inbox database of {Queue} is unavailable (attempt {Attempt}); the delivery is held, not counted as a failure, and retried in {Delay}")]
    public static partial void DatabaseUnavailable(this ILogger logger, Exception exception, string queue, int attempt, TimeSpan delay);

    [LoggerMessage(EventId = 5108, Level = LogLevel.Warning, Message = "Inbox consumer for {Queue} cannot start yet (broker or database unreachable); retrying in the background")]
    public static partial void StartDeferred(this ILogger logger, Exception exception, string queue);
}
