using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using Polly;
using Polly.Retry;
using RabbitMQ.Client;

namespace TwoPC.Participants.RabbitMq;

/// <summary>
/// A typed consumer as a hosted service: an <see cref="InboxConsumer"/> on an own, reconnecting connection whose
/// handler deserializes the body, then runs <typeparamref name="THandler"/> from a new DI scope inside the inbox
/// transaction, retried in process (each attempt behind a savepoint) before the delivery counts as failed.
/// </summary>
internal sealed class TypedConsumer<TMessage, THandler> : IHostedService, IAsyncDisposable
    where THandler : class, IMessageHandler<TMessage>
{
    private const string Savepoint = "twopc_attempt";
    private readonly IServiceProvider _services;
    private readonly TwoPCConsumerOptions _options;
    private readonly ILogger _logger;
    private readonly ResiliencePipeline _retry;
    private InboxConsumer? _consumer;

    public TypedConsumer(IServiceProvider services, TwoPCConsumerOptions options)
    {
        _services = services;
        _options = options;
        _logger = (services.GetService<ILoggerFactory>() ?? NullLoggerFactory.Instance).CreateLogger("TwoPC.Participants.RabbitMq.Consumer");
        _retry = options.RetryAttempts == 0 ? ResiliencePipeline.Empty : new ResiliencePipelineBuilder().AddRetry(new RetryStrategyOptions
        {
            ShouldHandle = args => ValueTask.FromResult(args.Outcome.Exception is { } ex && ex is not (PoisonMessageException or OperationCanceledException) && !InboxConsumer.IsDatabaseUnavailable(ex)),
            MaxRetryAttempts = options.RetryAttempts,
            BackoffType = DelayBackoffType.Exponential,
            UseJitter = true,
            Delay = options.RetryDelay,
            OnRetry = args =>
            {
                _logger.HandlerRetrying(args.Outcome.Exception!, typeof(THandler).Name, _options.Queue, args.AttemptNumber + 1, args.RetryDelay);
                return default;
            },
        }).Build();
    }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var dataSource = _options.DataSource?.Invoke(_services) ?? _services.GetRequiredService<NpgsqlDataSource>();
        var factory = _options.ConnectionFactory ?? _services.GetService<ConnectionFactory>()
            ?? throw new InvalidOperationException($"The consumer of '{_options.Queue}' has no broker: set TwoPCConsumerOptions.ConnectionFactory or register a RabbitMQ.Client.ConnectionFactory.");
        var inbox = _options.Inbox;
        inbox.Queue = _options.Queue;
        if (_options.Exchange is { } exchange)
        {
            string[] keys = _options.RoutingKeys.Count == 0 ? ["#"] : [.. _options.RoutingKeys];
            var exchangeType = _options.ExchangeType;
            inbox.DeclareTopology = async (channel, ct) =>
            {
                foreach (var key in keys)
                {
                    await RabbitMqTopology.DeclareConsumerQueueAsync(channel, exchange, _options.Queue, key, exchangeType, ct).ConfigureAwait(false);
                }
            };
        }

        _consumer = await InboxConsumer.StartAsync(factory, dataSource, inbox, HandleAsync, _services.GetService<ILoggerFactory>(), cancellationToken).ConfigureAwait(false);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (Interlocked.Exchange(ref _consumer, null) is { } consumer)
        {
            await consumer.DisposeAsync().AsTask().WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync() => await StopAsync(CancellationToken.None).ConfigureAwait(false);

    private async Task HandleAsync(InboxMessage message, NpgsqlConnection connection, NpgsqlTransaction transaction, CancellationToken cancellationToken)
    {
        var body = Deserialize(message);
        var context = new InboxContext(message, connection, transaction);
        await _retry.ExecuteAsync(
            static async (state, ct) => await state.Self.AttemptAsync(state.body, state.context, ct).ConfigureAwait(false),
            (Self: this, body, context),
            cancellationToken).ConfigureAwait(false);
    }

    private async Task AttemptAsync(TMessage body, InboxContext context, CancellationToken cancellationToken)
    {
        var retried = _options.RetryAttempts > 0;
        if (retried)
        {
            await context.Transaction.SaveAsync(Savepoint, cancellationToken).ConfigureAwait(false);
        }

        try
        {
            var scope = _services.CreateAsyncScope();
            await using (scope.ConfigureAwait(false))
            {
                var handler = scope.ServiceProvider.GetRequiredService<THandler>();
                await handler.HandleAsync(body, context, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (Exception) when (retried && !cancellationToken.IsCancellationRequested)
        {
            // Undo this attempt's writes (the inbox claim stays), so the next attempt starts clean. If even that fails
            // the connection is gone: the attempt's own error is the one to report.
            try
            {
                await context.Transaction.RollbackAsync(Savepoint, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is NpgsqlException or InvalidOperationException)
            {
                _logger.SavepointRollbackFailed(ex, _options.Queue, context.MessageId);
            }

            context.Attempt++;
            throw;
        }
    }

    private TMessage Deserialize(InboxMessage message)
    {
        TMessage? body;
        try
        {
            body = JsonSerializer.Deserialize<TMessage>(message.Body.Span, _options.JsonSerializerOptions);
        }
        catch (Exception ex) when (ex is JsonException or NotSupportedException or ArgumentException)
        {
            throw new PoisonMessageException($"the body is not a {typeof(TMessage).Name} (System.Text.Json: {ex.Message})", ex);
        }

        return body ?? throw new PoisonMessageException($"the body is JSON null, not a {typeof(TMessage).Name}");
    }
}
