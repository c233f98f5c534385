using Microsoft.Extensions.Logging;
using TwoPC.Participants;
using TwoPC.Transactions;

namespace TwoPC.Samples.Orders;

/// <summary>The order service's logs (event ids 8000-8099): one line per checkout step, each naming the order.</summary>
internal static partial class Log
{
    public const string Category = "TwoPC.Samples.Orders";

    [LoggerMessage(EventId = 8000, Level = LogLevel.Information, Message = "Order service ready: coordinator {CoordinatorUrl}, payments {PaymentsUrl}")]
    public static partial void Ready(this ILogger logger, Uri coordinatorUrl, Uri paymentsUrl);

    [LoggerMessage(EventId = 8001, Level = LogLevel.Information, Message = "Order {OrderId}: {CustomerId} checks out {Quantity} x {Sku} for {Amount}; began global transaction {TransactionId}")]
    public static partial void Begun(this ILogger logger, string orderId, string customerId, int quantity, string sku, decimal amount, string transactionId);

    [LoggerMessage(EventId = 8002, Level = LogLevel.Information, Message = "Order {OrderId}: joined as branch {Xid}; stock reserved, order row written")]
    public static partial void Reserved(this ILogger logger, string orderId, Xid xid);

    [LoggerMessage(EventId = 8003, Level = LogLevel.Information, Message = "Order {OrderId}: orders branch prepared (vote {Vote})")]
    public static partial void Prepared(this ILogger logger, string orderId, VoteKind vote);

    [LoggerMessage(EventId = 8004, Level = LogLevel.Information, Message = "Order {OrderId}: the payment service prepared its branch")]
    public static partial void Paid(this ILogger logger, string orderId);

    [LoggerMessage(EventId = 8005, Level = LogLevel.Information, Message = "Order {OrderId}: OrderPlaced staged at the coordinator as message {MessageId}; committing")]
    public static partial void EventStaged(this ILogger logger, string orderId, string messageId);

    [LoggerMessage(EventId = 8006, Level = LogLevel.Information, Message = "Order {OrderId}: transaction {TransactionId} committed")]
    public static partial void Committed(this ILogger logger, string orderId, string transactionId);

    [LoggerMessage(EventId = 8007, Level = LogLevel.Information, Message = "Order {OrderId}: transaction {TransactionId} rolled back: {Reason}")]
    public static partial void RolledBack(this ILogger logger, string orderId, string transactionId, string reason);

    [LoggerMessage(EventId = 8008, Level = LogLevel.Warning, Message = "Order {OrderId}: the coordinator did not answer the commit of {TransactionId}; the outcome is unknown here (the coordinator's log decides)")]
    public static partial void CommitUnknown(this ILogger logger, Exception exception, string orderId, string transactionId);

    [LoggerMessage(EventId = 8009, Level = LogLevel.Error, Message = "Order {OrderId}: transaction {TransactionId} ended {Outcome}: {Reason}")]
    public static partial void Heuristic(this ILogger logger, string orderId, string transactionId, string outcome, string? reason);

    [LoggerMessage(EventId = 8010, Level = LogLevel.Warning, Message = "Order {OrderId}: cannot begin or join a global transaction: {Reason}")]
    public static partial void Unavailable(this ILogger logger, string orderId, string reason);
}
