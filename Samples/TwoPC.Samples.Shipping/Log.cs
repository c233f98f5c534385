using Microsoft.Extensions.Logging;

namespace TwoPC.Samples.Shipping;

/// <summary>The shipping service's logs (event ids 8200-8299).</summary>
internal static partial class Log
{
    public const string Category = "TwoPC.Samples.Shipping";

    [LoggerMessage(EventId = 8200, Level = LogLevel.Information, Message = "Shipping service ready: consuming {Queue} (exchange {Exchange}, routing key {RoutingKey})")]
    public static partial void Ready(this ILogger logger, string queue, string exchange, string routingKey);

    [LoggerMessage(EventId = 8201, Level = LogLevel.Information, Message = "Order {OrderId}: shipment of {Quantity} x {Sku} to {CustomerId} recorded (message {MessageId})")]
    public static partial void Shipped(this ILogger logger, string orderId, int quantity, string sku, string customerId, string messageId);
}
