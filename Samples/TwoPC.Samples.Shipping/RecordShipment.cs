using Dapper;
using TwoPC.Participants.RabbitMq;

namespace TwoPC.Samples.Shipping;

/// <summary>
/// Handles <see cref="OrderPlaced"/> inside the inbox transaction, whose first statement claimed the message id: a
/// plain INSERT is enough. (A second message for the same order under another id would fail on the primary key and
/// end up dead-lettered.)
/// </summary>
internal sealed class RecordShipment(ILoggerFactory loggerFactory) : IMessageHandler<OrderPlaced>
{
    private readonly ILogger _log = loggerFactory.CreateLogger(Log.Category);

    public async Task HandleAsync(OrderPlaced message, InboxContext context, CancellationToken cancellationToken)
    {
        await context.Connection.ExecuteAsync(new CommandDefinition(
            "INSERT INTO shipments (order_id, customer_id, sku, quantity, message_id) VALUES (@OrderId, @CustomerId, @Sku, @Quantity, @MessageId)",
            new { message.OrderId, message.CustomerId, message.Sku, message.Quantity, context.MessageId },
            context.Transaction,
            cancellationToken: cancellationToken));
        _log.Shipped(message.OrderId, message.Quantity, message.Sku, message.CustomerId, context.MessageId);
    }
}

/// <summary>Whether the consumer is consuming (the broker may be down at start: the connection is retried meanwhile).</summary>
internal sealed class ShippingStatus
{
    private int _consuming;

    public bool IsConsuming => Volatile.Read(ref _consuming) == 1;

    /// <summary>Marks the consumer as consuming; <see langword="true"/> the first time.</summary>
    public bool MarkConsuming() => Interlocked.Exchange(ref _consuming, 1) == 0;
}
