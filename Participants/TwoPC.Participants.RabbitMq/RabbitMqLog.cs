using Microsoft.Extensions.Logging;
using TwoPC.Transactions;

namespace TwoPC.Participants.RabbitMq;

/// <summary>Log messages of the RabbitMQ participant (event ids 5000-5099).</summary>
internal static partial class RabbitMqLog
{
    [LoggerMessage(EventId = 5000, Level = LogLevel.Information, Message = "RabbitMQ resource manager {Name} connected to {Endpoint}")]
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
}
