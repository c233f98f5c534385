using System.Collections.Concurrent;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using Polly;
using Polly.Retry;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using RabbitMQ.Client.Exceptions;

namespace TwoPC.Participants.RabbitMq;

/// <summary>A delivered message, as the handler sees it.</summary>
/// <param name="MessageId">The publisher's stable message id (the inbox key).</param>
/// <param name="Exchange">The exchange it was published to.</param>
/// <param name="RoutingKey">Its routing key.</param>
/// <param name="Body">A copy of the body (valid after the handler returns).</param>
/// <param name="Type">The AMQP <c>type</c> property.</param>
/// <param name="Headers">Application headers; byte-array values decoded as UTF-8 strings.</param>
/// <param name="DeliveryCount">How many deliveries of it failed before (0 on the first delivery).</param>
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

    /// <summary>
    /// After this many failed deliveries a message is dead-lettered with the last error. Default 5. Only failures
    /// of the handler count (not an unreachable database). The consumer counts them itself per message id, so the
    /// limit holds on every queue type; on a quorum queue the broker's <c>x-delivery-count</c> is honoured too
    /// (it also counts deliveries to a consumer that crashed).
    /// </summary>
    public int DeliveryLimit { get; set; } = 5;

    /// <summary>Schema of the inbox table (created if missing). Default <c>twopc</c>.</summary>
    public string InboxSchema { get; set; } = "twopc";

    /// <summary>How long an inbox row is kept; must exceed the longest redelivery horizon. Default 7 days.</summary>
    public TimeSpan InboxRetention { get; set; } = TimeSpan.FromDays(7);

    /// <summary>At most this many expired inbox rows are deleted per cleanup round. Default 5,000.</summary>
    public int CleanupBatchSize { get; set; } = 5_000;

    /// <summary>How often expired inbox rows are cleaned up. Default 1 minute.</summary>
    public TimeSpan CleanupInterval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// The longest pause between two attempts to handle a message while its database is unreachable (connection
    /// refused, server shutting down or restarting, too many connections). Such failures are not the handler's:
    /// the delivery is held and retried with backoff from 100 ms up to this, without counting towards
    /// <see cref="DeliveryLimit"/>. Default 5 s.
    /// </summary>
    public TimeSpan DatabaseRetryMaxDelay { get; set; } = TimeSpan.FromSeconds(5);

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
/// <remarks>
/// A message whose handler fails is requeued and, after <see cref="InboxConsumerOptions.DeliveryLimit"/>
/// failures, dead-lettered. A database that cannot be reached is not the message's fault: the delivery is
/// held (so the consumer stops taking new work) and retried with backoff until the database answers.
/// </remarks>
public sealed partial class InboxConsumer : IAsyncDisposable
{
    /// <summary>Header on a dead-lettered message: why.</summary>
    public const string DeadLetterReasonHeader = "x-twopc-dead-letter-reason";

    private readonly NpgsqlDataSource _dataSource;
    private readonly InboxConsumerOptions _options;
    private readonly InboxHandler _handler;
    private readonly ILogger _logger;
    private readonly string _inbox;
    private readonly string _consumer;
    private readonly CancellationTokenSource _stopping = new();
    private readonly ResiliencePipeline _database;
    private const int MaxTrackedFailures = 100_000;

    private readonly ConcurrentDictionary<string, long> _failures = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();
    private IChannel? _channel;
    private IChannel? _deadLetterChannel;
    private BrokerConnection? _ownConnection;
    private bool _inboxCreated;
    private Task _cleanup = Task.CompletedTask;
    private Task _starting = Task.CompletedTask;
    private int _disposed;

    private InboxConsumer(NpgsqlDataSource dataSource, InboxConsumerOptions options, InboxHandler handler, ILogger logger)
    {
        _dataSource = dataSource;
        _options = options;
        _handler = handler;
        _logger = logger;
        _inbox = options.InboxSchema + ".inbox";
        _consumer = options.ConsumerName ?? options.Queue;
        _database = new ResiliencePipelineBuilder().AddRetry(new RetryStrategyOptions
        {
            ShouldHandle = args => ValueTask.FromResult(args.Outcome.Exception is { } ex && IsDatabaseUnavailable(ex) && !_stopping.IsCancellationRequested),
            MaxRetryAttempts = int.MaxValue,
            BackoffType = DelayBackoffType.Exponential,
            UseJitter = true,
            Delay = TimeSpan.FromMilliseconds(Math.Min(100, options.DatabaseRetryMaxDelay.TotalMilliseconds)),
            MaxDelay = options.DatabaseRetryMaxDelay,
            OnRetry = args =>
            {
                _logger.DatabaseUnavailable(args.Outcome.Exception!, _options.Queue, args.AttemptNumber + 1, args.RetryDelay);
                return default;
            },
        }).Build();
    }

    /// <summary>
    /// Creates the inbox table if missing and starts consuming (manual acks, prefetch, concurrency) on
    /// <paramref name="connection"/>. If the database or the broker cannot be reached now, this returns anyway
    /// and the start is retried in the background (with backoff); other errors (a missing queue) are thrown.
    /// </summary>
    public static async Task<InboxConsumer> StartAsync(IConnection connection, NpgsqlDataSource dataSource, InboxConsumerOptions options, InboxHandler handler, ILoggerFactory? loggerFactory = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connection);
        var consumer = Create(dataSource, options, handler, loggerFactory);
        try
        {
            await consumer.StartOnAsync(connection, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (IsUnreachable(ex) && !cancellationToken.IsCancellationRequested)
        {
            consumer._logger.StartDeferred(ex, options.Queue);
            consumer._starting = consumer.RetryStartAsync(connection);
        }

        return consumer;
    }

    /// <summary>
    /// Starts a consumer on a connection of its own, opened from <paramref name="connectionFactory"/> (copied, not
    /// modified) in the background: a broker or database that is down now is not an error. The connection is
    /// re-opened after every loss, and consuming resumes on it.
    /// </summary>
    public static Task<InboxConsumer> StartAsync(ConnectionFactory connectionFactory, NpgsqlDataSource dataSource, InboxConsumerOptions options, InboxHandler handler, ILoggerFactory? loggerFactory = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connectionFactory);
        cancellationToken.ThrowIfCancellationRequested();
        var consumer = Create(dataSource, options, handler, loggerFactory);
        consumer._ownConnection = BrokerConnection.Start(connectionFactory, "twopc-inbox-" + consumer._consumer, TimeSpan.FromSeconds(1), consumer.StartOnAsync, consumer._logger);
        return Task.FromResult(consumer);
    }

    private static InboxConsumer Create(NpgsqlDataSource dataSource, InboxConsumerOptions options, InboxHandler handler, ILoggerFactory? loggerFactory)
    {
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

        if (options.DatabaseRetryMaxDelay <= TimeSpan.Zero)
        {
            throw new ArgumentException("InboxConsumerOptions.DatabaseRetryMaxDelay must be positive.", nameof(options));
        }

        return new InboxConsumer(dataSource, options, handler, (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger("TwoPC.Participants.RabbitMq.Inbox"));
    }

    private async Task RetryStartAsync(IConnection connection)
    {
        var stopping = _stopping.Token;
        for (var delay = TimeSpan.FromMilliseconds(100); ; delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, _options.DatabaseRetryMaxDelay.Ticks)))
        {
            try
            {
                await Task.Delay(delay, stopping).ConfigureAwait(false);
                await StartOnAsync(connection, stopping).ConfigureAwait(false);
                return;
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                _logger.StartDeferred(ex, _options.Queue);
            }
        }
    }

    /// <summary>Creates the inbox (once) and starts consuming on <paramref name="connection"/> (again after every reconnect of an own connection).</summary>
    private async Task StartOnAsync(IConnection connection, CancellationToken cancellationToken)
    {
        if (!_inboxCreated)
        {
            await CreateInboxAsync(cancellationToken).ConfigureAwait(false);
            _inboxCreated = true;
        }

        var deadLetterChannel = await connection.CreateChannelAsync(new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true), cancellationToken).ConfigureAwait(false);
        var channel = await connection.CreateChannelAsync(new CreateChannelOptions(false, false, consumerDispatchConcurrency: _options.Concurrency), cancellationToken).ConfigureAwait(false);
        try
        {
            await channel.BasicQosAsync(0, _options.Prefetch, global: false, cancellationToken).ConfigureAwait(false);
            var consumer = new AsyncEventingBasicConsumer(channel);
            consumer.ReceivedAsync += (sender, delivery) => OnReceivedAsync(channel, delivery);
            await channel.BasicConsumeAsync(_options.Queue, autoAck: false, consumer, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await channel.DisposeAsync().ConfigureAwait(false);
            await deadLetterChannel.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        IChannel? oldChannel, oldDeadLetter;
        lock (_gate)
        {
            (oldChannel, _channel) = (_channel, channel);
            (oldDeadLetter, _deadLetterChannel) = (_deadLetterChannel, deadLetterChannel);
            if (_cleanup.IsCompleted)
            {
                _cleanup = CleanupLoopAsync(_stopping.Token);
            }
        }

        foreach (var old in new[] { oldChannel, oldDeadLetter })
        {
            if (old is not null)
            {
                await old.DisposeAsync().ConfigureAwait(false);
            }
        }

        _logger.ConsumerStarted(_options.Queue, _consumer);
    }

    private async Task CreateInboxAsync(CancellationToken cancellationToken)
    {
        await using var create = _dataSource.CreateCommand(
            $"CREATE SCHEMA IF NOT EXISTS {_options.InboxSchema}; " +
            $"CREATE TABLE IF NOT EXISTS {_inbox} (consumer text NOT NULL, message_id text NOT NULL, received_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (consumer, message_id)); " +
            $"CREATE INDEX IF NOT EXISTS inbox_received_at ON {_inbox} USING brin (received_at)");
        try
        {
            await create.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (PostgresException ex) when (ex.SqlState is "23505" or "42P07")
        {
            // Created concurrently by another consumer.
        }
    }

    private async Task OnReceivedAsync(IChannel channel, BasicDeliverEventArgs delivery)
    {
        var messageId = delivery.BasicProperties.MessageId;
        if (string.IsNullOrEmpty(messageId))
        {
            await DeadLetterAsync(channel, delivery, "the message has no MessageId, which exactly-once processing needs; it was not processed").ConfigureAwait(false);
            return;
        }

        // Failed deliveries before this one: the consumer's own count (classic queues set no x-delivery-count),
        // or the broker's where it keeps one (it also counts deliveries to a consumer that died).
        var brokerCount = delivery.BasicProperties.Headers?.TryGetValue("x-delivery-count", out var count) == true && count is not null ? Convert.ToInt64(count, System.Globalization.CultureInfo.InvariantCulture) : 0;
        var failedBefore = Math.Max(brokerCount, _failures.GetValueOrDefault(messageId));
        var message = new InboxMessage(messageId, delivery.Exchange, delivery.RoutingKey, delivery.Body.ToArray(), delivery.BasicProperties.Type, Headers(delivery.BasicProperties.Headers), failedBefore);
        bool duplicate;
        try
        {
            // An unreachable database is retried here, holding the delivery: it neither counts nor requeues.
            duplicate = await _database.ExecuteAsync(static async (state, ct) => await state.Self.HandleInTransactionAsync(state.message, ct).ConfigureAwait(false), (Self: this, message), _stopping.Token).ConfigureAwait(false);
        }
        catch (Exception) when (_stopping.IsCancellationRequested)
        {
            // Stopping: not the message's fault; the broker redelivers it to the next consumer.
            await NackQuietlyAsync(channel, delivery).ConfigureAwait(false);
            return;
        }
        catch (Exception ex)
        {
            var failures = failedBefore + 1;
            if (failures >= _options.DeliveryLimit)
            {
                _logger.DeliveryLimitReached(ex, messageId, _options.Queue, failures);
                await DeadLetterAsync(channel, delivery, $"failed {failures} times (delivery limit {_options.DeliveryLimit}); last error: {ex.GetType().Name}: {ex.Message}").ConfigureAwait(false);
                _failures.TryRemove(messageId, out _);
            }
            else
            {
                // Bounded: ids of messages that later succeeded on another consumer are never removed here.
                if (_failures.Count >= MaxTrackedFailures)
                {
                    _failures.Clear();
                }

                _failures[messageId] = failures;
                _logger.HandlerFailed(ex, messageId, _options.Queue, failures);
                await channel.BasicNackAsync(delivery.DeliveryTag, multiple: false, requeue: true).ConfigureAwait(false);
            }

            return;
        }

        _failures.TryRemove(messageId, out _);
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

    /// <summary>
    /// Whether <paramref name="exception"/> says the database could not be reached or is not serving (rather than
    /// that the handler failed): no connection could be opened (refused, timed out, pool exhausted), the
    /// connection broke (I/O error), the server is shutting down or starting (57P01-57P03), a connection
    /// exception (08xxx), insufficient resources (53xxx, e.g. 53300 too many connections) or a system error (58xxx).
    /// A command that timed out on a working connection is the handler's failure: it counts.
    /// </summary>
    internal static bool IsDatabaseUnavailable(Exception exception)
    {
        for (var ex = exception; ex is not null; ex = ex.InnerException)
        {
            switch (ex)
            {
                case DatabaseUnavailableException:
                    return true;
                case PostgresException pg:
                    return pg.SqlState.StartsWith("08", StringComparison.Ordinal) || pg.SqlState.StartsWith("53", StringComparison.Ordinal)
                        || pg.SqlState.StartsWith("58", StringComparison.Ordinal) || pg.SqlState is "57P01" or "57P02" or "57P03";
                case NpgsqlOperationInProgressException:
                    return false; // the handler used its connection concurrently: its own bug
                case NpgsqlException npgsql:
                    // No server error: the connection broke under the command (I/O), or the command timed out.
                    return HasInner<System.IO.IOException>(npgsql) || HasInner<System.Net.Sockets.SocketException>(npgsql);
            }
        }

        return false;
    }

    private static bool HasInner<T>(Exception exception)
        where T : Exception
    {
        for (var ex = exception.InnerException; ex is not null; ex = ex.InnerException)
        {
            if (ex is T)
            {
                return true;
            }
        }

        return false;
    }

    private static bool IsUnreachable(Exception exception) =>
        IsDatabaseUnavailable(exception) || exception is AlreadyClosedException or BrokerUnreachableException or System.IO.IOException;

    /// <returns><see langword="true"/> when the message was processed before (nothing was done).</returns>
    private async Task<bool> HandleInTransactionAsync(InboxMessage message, CancellationToken cancellationToken)
    {
        NpgsqlConnection connection;
        try
        {
            connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException or System.Net.Sockets.SocketException && !cancellationToken.IsCancellationRequested)
        {
            // Not one statement of the handler ran: whatever went wrong, it is not the message's fault.
            throw new DatabaseUnavailableException(ex);
        }

        await using var _ = connection.ConfigureAwait(false);
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
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        await _starting.ConfigureAwait(false);
        Task cleanup;
        IChannel? channel, deadLetterChannel;
        lock (_gate)
        {
            cleanup = _cleanup;
            (channel, deadLetterChannel) = (_channel, _deadLetterChannel);
        }

        await cleanup.ConfigureAwait(false);
        if (channel is not null)
        {
            try
            {
                await channel.CloseAsync().ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is AlreadyClosedException or OperationInterruptedException)
            {
                // The connection is gone already.
            }

            await channel.DisposeAsync().ConfigureAwait(false);
        }

        if (deadLetterChannel is not null)
        {
            await deadLetterChannel.DisposeAsync().ConfigureAwait(false);
        }

        if (_ownConnection is not null)
        {
            await _ownConnection.DisposeAsync().ConfigureAwait(false);
        }

        _stopping.Dispose();
    }

    [GeneratedRegex("^[a-z_][a-z0-9_]{0,62}$")]
    private static partial Regex SchemaName();
}

/// <summary>The inbox database could not be reached: no connection could be opened.</summary>
internal sealed class DatabaseUnavailableException(Exception innerException)
    : Exception("The inbox database cannot be reached: " + innerException.Message, innerException);
