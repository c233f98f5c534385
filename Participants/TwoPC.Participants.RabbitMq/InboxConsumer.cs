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

/// <summary>
/// Consumes a queue with exactly-once effects: each message is handled inside a PostgreSQL transaction
/// whose first statement inserts the message id into an inbox (<c>INSERT … ON CONFLICT DO NOTHING</c>);
/// zero rows means it was processed before, so it is acknowledged and skipped. The acknowledgement is
/// sent only after the transaction committed, so a message counts as processed if and only if the
/// transaction that handled it committed — a crash between commit and ack only causes a redelivery
/// that the inbox absorbs.
/// </summary>
/// <remarks>
/// A message whose handler fails is requeued (after <see cref="InboxConsumerOptions.RedeliveryDelay"/>) and, after
/// <see cref="InboxConsumerOptions.DeliveryLimit"/> failures, dead-lettered; one whose handler throws
/// <see cref="PoisonMessageException"/> is dead-lettered at once. Each delivery is handled in a span continuing the
/// publisher's trace (see <see cref="RabbitMqBranch.Publish(OutgoingMessage)"/>). For typed handlers with JSON bodies
/// and a DI scope per message, see <see cref="TwoPCConsumerServiceCollectionExtensions.AddTwoPCConsumer{TMessage, THandler}"/>. A database that cannot be reached is not the message's fault: the delivery is
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
    [System.Diagnostics.CodeAnalysis.SuppressMessage("ApiDesign", "RS0026:Do not add multiple public overloads with optional parameters", Justification = "The overloads differ in the type of their first, required parameter, so a call is never ambiguous.")]
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
    [System.Diagnostics.CodeAnalysis.SuppressMessage("ApiDesign", "RS0026:Do not add multiple public overloads with optional parameters", Justification = "The overloads differ in the type of their first, required parameter, so a call is never ambiguous.")]
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

        if (_options.DeclareTopology is { } declare)
        {
            var setup = await connection.CreateChannelAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
            await using (setup.ConfigureAwait(false))
            {
                await declare(setup, cancellationToken).ConfigureAwait(false);
            }
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
        _options.OnConsuming?.Invoke();
    }

    private async Task OnReceivedAsync(IChannel channel, BasicDeliverEventArgs delivery)
    {
        var messageId = delivery.BasicProperties.MessageId;
        using var activity = MessageTracing.StartProcess(_options.Queue, delivery.Exchange, delivery.RoutingKey, messageId, delivery.BasicProperties.Headers);
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
        catch (PoisonMessageException poison)
        {
            // It can never succeed: dead-lettered now, whatever the delivery limit.
            activity?.SetStatus(System.Diagnostics.ActivityStatusCode.Error, poison.Message);
            _failures.TryRemove(messageId, out _);
            await DeadLetterAsync(channel, delivery, "poison message: " + poison.Message).ConfigureAwait(false);
            return;
        }
        catch (Exception ex)
        {
            activity?.SetStatus(System.Diagnostics.ActivityStatusCode.Error, ex.Message);
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
                await RequeueAsync(channel, delivery).ConfigureAwait(false);
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
