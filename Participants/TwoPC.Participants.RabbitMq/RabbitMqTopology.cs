using RabbitMQ.Client;

namespace TwoPC.Participants.RabbitMq;

/// <summary>Declares the topology TwoPC's messaging expects: durable exchanges, quorum queues, a dead-letter exchange and queue.</summary>
public static class RabbitMqTopology
{
    /// <summary>The dead-letter exchange (fanout) that <see cref="DeclareConsumerQueueAsync"/> wires every queue to.</summary>
    public const string DeadLetterExchange = "twopc.dead-letter";

    /// <summary>The queue behind <see cref="DeadLetterExchange"/>.</summary>
    public const string DeadLetterQueue = "twopc.dead-letter";

    /// <summary>
    /// Declares a durable exchange, a quorum queue bound to it with <paramref name="routingKey"/>, and the
    /// dead-letter exchange and queue the consumer's poison messages go to. Idempotent.
    /// </summary>
    public static async Task DeclareConsumerQueueAsync(IChannel channel, string exchange, string queue, string routingKey, string exchangeType = ExchangeType.Topic, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(channel);
        await channel.ExchangeDeclareAsync(DeadLetterExchange, ExchangeType.Fanout, durable: true, autoDelete: false, cancellationToken: cancellationToken).ConfigureAwait(false);
        await channel.QueueDeclareAsync(DeadLetterQueue, durable: true, exclusive: false, autoDelete: false,
            arguments: new Dictionary<string, object?> { ["x-queue-type"] = "quorum" }, cancellationToken: cancellationToken).ConfigureAwait(false);
        await channel.QueueBindAsync(DeadLetterQueue, DeadLetterExchange, string.Empty, cancellationToken: cancellationToken).ConfigureAwait(false);

        await channel.ExchangeDeclareAsync(exchange, exchangeType, durable: true, autoDelete: false, cancellationToken: cancellationToken).ConfigureAwait(false);
        await channel.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false, arguments: new Dictionary<string, object?>
        {
            ["x-queue-type"] = "quorum",
            ["x-dead-letter-exchange"] = DeadLetterExchange,
        }, cancellationToken: cancellationToken).ConfigureAwait(false);
        await channel.QueueBindAsync(queue, exchange, routingKey, cancellationToken: cancellationToken).ConfigureAwait(false);
    }
}
