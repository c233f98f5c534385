using System.Text;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace TwoPC.Participants.RabbitMq;

/// <summary>A delivered message, as the handler sees it.</summary>
/// <param name="MessageId">The publisher's stable message id (the inbox key).</param>
/// <param name="Exchange">The exchange it was published to.</param>
/// <param name="RoutingKey">Its routing key.</param>
/// <param name="Body">A copy of the body (valid after the handler returns).</param>
/// <param name="Type">The AMQP <c>type</c> property.</param>
/// <param name="Headers">Application headers; byte-array values decoded as UTF-8 strings.</param>
/// <param name="DeliveryCount">How many times it was delivered before (0 on the first delivery).</param>
public sealed record InboxMessage(string MessageId, string Exchange, string RoutingKey, ReadOnlyMemory<byte> Body, string? Type, IReadOnlyDictionary<string, string> Headers, long DeliveryCount);

/// <summary>The application's handler: do the message's effect on <paramref name="connection"/> within <paramref name="transaction"/>.</summary>
public delegate Task InboxHandler(InboxMessage message, NpgsqlConnection connection, NpgsqlTransaction transaction, CancellationToken cancellationToken);

/// <summary>Settings of an <see cref="InboxConsumer"/>.</summary>
public sealed class InboxConsumerOptions
{
    /// <summary>The queue to consume (required).</summary>
    public string Queue { get; set; } = string.Empty;

    /// <summary>The consumer's name in the inbox (messages are deduplicated per consumer); defaults to <see cref="Queue"/>.</summary>
    public string? ConsumerName { get; set; }

    /// <summary>Unacknowledged messages the broker may hand over at once. Default 32.</summary>
    public ushort Prefetch { get; set; } = 32;

    /// <summary>Messages handled in parallel. Default 4.</summary>
    public ushort Concurrency { get; set; } = 4;

    /// <summary>After this many failed deliveries a message is dead-lettered with the last error. Default 5.</summary>
    public int DeliveryLimit { get; set; } = 5;

    /// <summary>Schema of the inbox table (created if missing). Default <c>twopc</c>.</summary>
    public string InboxSchema { get; set; } = "twopc";

    /// <summary>How long an inbox row is kept; must exceed the longest redelivery horizon. Default 7 days.</summary>
    public TimeSpan InboxRetention { get; set; } = TimeSpan.FromDays(7);

    /// <summary>At most this many expired inbox rows are deleted per cleanup round. Default 5,000.</summary>
    public int CleanupBatchSize { get; set; } = 5_000;

    /// <summary>How often expired inbox rows are cleaned up. Default 1 minute.</summary>
    public TimeSpan CleanupInterval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>Test hook between the database commit and the ack (the crash tests kill the consumer there).</summary>
    internal Func<InboxMessage, ValueTask>? AfterCommit { get; set; }
}

/// <summary>
/// Consumes a queue with exactly-once effects: each message is handled inside a PostgreSQL transaction
/// whose first statement inserts the message id into an inbox (<c>INSERT … ON CONFLICT DO NOTHING</c>);
/// zero rows means it was processed before, so it is acknowledged and skipped. The acknowledgement is
/// sent only after the transaction committed, so a message counts as processed if and only if the
/// transaction that handled it committed — a crash between commit and ack only causes a redelivery
/// that the inbox absorbs.
/// </summary>
public sealed partial class InboxConsumer : IAsyncDisposable
{
    /// <summary>Header on a dead-lettered message: why.</summary>
    public const string DeadLetterReasonHeader = "x-twopc-dead-letter-reason";

    private readonly IConnection _connection;
    private readonly NpgsqlDataSource _dataSource;
    private readonly InboxConsumerOptions _options;
    private readonly InboxHandler _handler;
    private readonly ILogger _logger;
    private readonly string _inbox;
    private readonly string _consumer;
    private readonly CancellationTokenSource _stopping = new();
    private IChannel? _channel;
    private IChannel? _deadLetterChannel;
    private Task _cleanup = Task.CompletedTask;

    private InboxConsumer(IConnection connection, NpgsqlDataSource dataSource, InboxConsumerOptions options, InboxHandler handler, ILogger logger)
    {
        _connection = connection;
        _dataSource = dataSource;
        _options = options;
        _handler = handler;
        _logger = logger;
        _inbox = options.InboxSchema + ".inbox";
        _consumer = options.ConsumerName ?? options.Queue;
    }

    /// <summary>Creates the inbox table if missing and starts consuming (manual acks, prefetch, concurrency).</summary>
    public static async Task<InboxConsumer> StartAsync(IConnection connection, NpgsqlDataSource dataSource, InboxConsumerOptions options, InboxHandler handler, ILoggerFactory? loggerFactory = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(handler);
        if (string.IsNullOrEmpty(options.Queue))
        {
            throw new ArgumentException("InboxConsumerOptions.Queue is required.", nameof(options));
        }

        if (!SchemaName().IsMatch(options.InboxSchema))
        {
            throw new ArgumentException($"InboxConsumerOptions.InboxSchema '{options.InboxSchema}' must match [a-z_][a-z0-9_]*.", nameof(options));
        }

        if (options.DeliveryLimit < 1 || options.Concurrency < 1 || options.Prefetch < 1)
        {
            throw new ArgumentException("InboxConsumerOptions.DeliveryLimit, Concurrency and Prefetch must be at least 1.", nameof(options));
        }

        var consumer = new InboxConsumer(connection, dataSource, options, handler, (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger("TwoPC.Participants.RabbitMq.Inbox"));
        await consumer.StartCoreAsync(cancellationToken).ConfigureAwait(false);
        return consumer;
    }

    private async Task StartCoreAsync(CancellationToken cancellationToken)
    {
        await using (var create = _dataSource.CreateCommand(
            $"CREATE SCHEMA IF NOT EXISTS {_options.InboxSchema}; " +
            $"CREATE TABLE IF NOT EXISTS {_inbox} (consumer text NOT NULL, message_id text NOT NULL, received_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (consumer, message_id)); " +
            $"CREATE INDEX IF NOT EXISTS inbox_received_at ON {_inbox} USING brin (received_at)"))
        {
            try
            {
                await create.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (PostgresException ex) when (ex.SqlState is "23505" or "42P07")
            {
                // Created concurrently by another consumer.
            }
        }

        _deadLetterChannel = await _connection.CreateChannelAsync(new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true), cancellationToken).ConfigureAwait(false);
        _channel = await _connection.CreateChannelAsync(new CreateChannelOptions(false, false, consumerDispatchConcurrency: _options.Concurrency), cancellationToken).ConfigureAwait(false);
        await _channel.BasicQosAsync(0, _options.Prefetch, global: false, cancellationToken).ConfigureAwait(false);
        var consumer = new AsyncEventingBasicConsumer(_channel);
        consumer.ReceivedAsync += OnReceivedAsync;
        await _channel.BasicConsumeAsync(_options.Queue, autoAck: false, consumer, cancellationToken).ConfigureAwait(false);
        _cleanup = CleanupLoopAsync(_stopping.Token);
        _logger.ConsumerStarted(_options.Queue, _consumer);
    }

    private async Task OnReceivedAsync(object sender, BasicDeliverEventArgs delivery)
    {
        var channel = _channel!;
        var messageId = delivery.BasicProperties.MessageId;
        var deliveryCount = delivery.BasicProperties.Headers?.TryGetValue("x-delivery-count", out var count) == true && count is not null ? Convert.ToInt64(count, System.Globalization.CultureInfo.InvariantCulture) : 0;
        if (string.IsNullOrEmpty(messageId))
        {
            await DeadLetterAsync(delivery, "the message has no MessageId, which exactly-once processing needs; it was not processed").ConfigureAwait(false);
            return;
        }

        var message = new InboxMessage(messageId, delivery.Exchange, delivery.RoutingKey, delivery.Body.ToArray(), delivery.BasicProperties.Type, Headers(delivery.BasicProperties.Headers), deliveryCount);
        bool duplicate;
        try
        {
            duplicate = await HandleInTransactionAsync(message, _stopping.Token).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            if (deliveryCount + 1 >= _options.DeliveryLimit)
            {
                _logger.DeliveryLimitReached(ex, messageId, _options.Queue, deliveryCount + 1);
                await DeadLetterAsync(delivery, $"failed {deliveryCount + 1} times (delivery limit {_options.DeliveryLimit}); last error: {ex.GetType().Name}: {ex.Message}").ConfigureAwait(false);
            }
            else
            {
                _logger.HandlerFailed(ex, messageId, _options.Queue, deliveryCount + 1);
                await channel.BasicNackAsync(delivery.DeliveryTag, multiple: false, requeue: true).ConfigureAwait(false);
            }

            return;
        }

        if (_options.AfterCommit is { } afterCommit && !duplicate)
        {
            await afterCommit(message).ConfigureAwait(false);
        }

        // Only now, after the commit: a crash before this line makes the broker redeliver, and the inbox skips it.
        await channel.BasicAckAsync(delivery.DeliveryTag, multiple: false).ConfigureAwait(false);
        if (duplicate)
        {
            _logger.Duplicate(messageId, _options.Queue);
        }
    }

    /// <returns><see langword="true"/> when the message was processed before (nothing was done).</returns>
    private async Task<bool> HandleInTransactionAsync(InboxMessage message, CancellationToken cancellationToken)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using (var claim = new NpgsqlCommand($"INSERT INTO {_inbox} (consumer, message_id) VALUES ($1, $2) ON CONFLICT DO NOTHING", connection, transaction))
        {
            claim.Parameters.AddWithValue(_consumer);
            claim.Parameters.AddWithValue(message.MessageId);
            if (await claim.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 0)
            {
                await transaction.RollbackAsync(cancellationToken).ConfigureAwait(false);
                return true;
            }
        }

        await _handler(message, connection, transaction, cancellationToken).ConfigureAwait(false);
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return false;
    }

    private async Task DeadLetterAsync(BasicDeliverEventArgs delivery, string reason)
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
            await _channel!.BasicNackAsync(delivery.DeliveryTag, multiple: false, requeue: true).ConfigureAwait(false);
            return;
        }

        _logger.DeadLettered(delivery.BasicProperties.MessageId ?? "(none)", _options.Queue, reason);
        await _channel!.BasicAckAsync(delivery.DeliveryTag, multiple: false).ConfigureAwait(false);
    }

    /// <summary>Deletes inbox rows older than the retention, in bounded batches.</summary>
    public async Task<int> CleanupAsync(CancellationToken cancellationToken = default)
    {
        await using var command = _dataSource.CreateCommand(
            $"DELETE FROM {_inbox} WHERE ctid IN (SELECT ctid FROM {_inbox} WHERE consumer = $1 AND received_at < now() - $2 LIMIT $3)");
        command.Parameters.AddWithValue(_consumer);
        command.Parameters.AddWithValue(_options.InboxRetention);
        command.Parameters.AddWithValue(_options.CleanupBatchSize);
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private async Task CleanupLoopAsync(CancellationToken stopping)
    {
        using var timer = new PeriodicTimer(_options.CleanupInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(stopping).ConfigureAwait(false))
            {
                try
                {
                    await CleanupAsync(stopping).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    _logger.CleanupFailed(ex, _options.Queue);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
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

    /// <summary>Stops consuming (in-flight handlers finish) and closes the channels.</summary>
    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        await _cleanup.ConfigureAwait(false);
        if (_channel is not null)
        {
            await _channel.CloseAsync().ConfigureAwait(false);
            await _channel.DisposeAsync().ConfigureAwait(false);
        }

        if (_deadLetterChannel is not null)
        {
            await _deadLetterChannel.DisposeAsync().ConfigureAwait(false);
        }

        _stopping.Dispose();
    }

    [GeneratedRegex("^[a-z_][a-z0-9_]{0,62}$")]
    private static partial Regex SchemaName();
}
