using System.Text;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using RabbitMQ.Client.Exceptions;

namespace TwoPC.Participants.RabbitMq;

// What happens to a delivery that was not handled: requeued (after the redelivery delay) or dead-lettered with the reason.
public sealed partial class InboxConsumer
{
    /// <summary>Requeues a failed delivery, after <see cref="InboxConsumerOptions.RedeliveryDelay"/> (the delivery is held meanwhile).</summary>
    private async Task RequeueAsync(IChannel channel, BasicDeliverEventArgs delivery)
    {
        if (_options.RedeliveryDelay > TimeSpan.Zero)
        {
            try
            {
                await Task.Delay(_options.RedeliveryDelay, _stopping.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // Stopping: requeued now.
            }
        }

        await NackQuietlyAsync(channel, delivery).ConfigureAwait(false);
    }

    private static async Task NackQuietlyAsync(IChannel channel, BasicDeliverEventArgs delivery)
    {
        try
        {
            await channel.BasicNackAsync(delivery.DeliveryTag, multiple: false, requeue: true).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is AlreadyClosedException or OperationInterruptedException or ObjectDisposedException)
        {
            // The channel closed: the broker requeues its unacknowledged messages anyway.
        }
    }

    private async Task DeadLetterAsync(IChannel channel, BasicDeliverEventArgs delivery, string reason)
    {
        var headers = delivery.BasicProperties.Headers is { } original ? new Dictionary<string, object?>(original, StringComparer.Ordinal) : new Dictionary<string, object?>(StringComparer.Ordinal);
        headers[DeadLetterReasonHeader] = Encoding.UTF8.GetBytes(reason);
        headers["x-twopc-original-queue"] = Encoding.UTF8.GetBytes(_options.Queue);
        var properties = new BasicProperties
        {
            Persistent = true,
            MessageId = delivery.BasicProperties.MessageId,
            Type = delivery.BasicProperties.Type,
            ContentType = delivery.BasicProperties.ContentType,
            Headers = headers,
        };
        try
        {
            await _deadLetterChannel!.BasicPublishAsync(RabbitMqTopology.DeadLetterExchange, _options.Queue, mandatory: true, properties, delivery.Body).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // Not parked, so not acknowledged either: the broker keeps it and redelivers it.
            _logger.DeadLetterFailed(ex, delivery.BasicProperties.MessageId ?? "(none)", _options.Queue);
            await NackQuietlyAsync(channel, delivery).ConfigureAwait(false);
            return;
        }

        _logger.DeadLettered(delivery.BasicProperties.MessageId ?? "(none)", _options.Queue, reason);
        await channel.BasicAckAsync(delivery.DeliveryTag, multiple: false).ConfigureAwait(false);
    }

    private static Dictionary<string, string> Headers(IDictionary<string, object?>? headers)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, value) in headers ?? new Dictionary<string, object?>())
        {
            result[name] = value switch
            {
                byte[] bytes => Encoding.UTF8.GetString(bytes),
                null => string.Empty,
                _ => Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture) ?? string.Empty,
            };
        }

        return result;
    }
}
