using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Npgsql;
using Polly;
using Polly.Retry;
using RabbitMQ.Client;
using TwoPC.Participants.RabbitMq;

namespace TwoPC.Samples.Shipping;

/// <summary>
/// Connects to RabbitMQ in the background — a broker that is down when the service starts is not an error, as for
/// TwoPC's RabbitMQ resource manager: the connection is retried with capped backoff until it opens, the service runs
/// meanwhile (health answers 503 "not consuming yet") — then declares the topology and starts the inbox consumer.
/// Later losses are recovered by the client (automatic and topology recovery). Prints <c>ready {address}</c> once consuming.
/// </summary>
internal sealed class ShippingConsumer(
    Uri brokerUri,
    NpgsqlDataSource dataSource,
    Func<InboxMessage, NpgsqlConnection, NpgsqlTransaction, CancellationToken, Task> handle,
    IServer server,
    IHostApplicationLifetime lifetime,
    ILoggerFactory loggerFactory) : BackgroundService
{
    private readonly ILogger _log = loggerFactory.CreateLogger(Log.Category);
    private IConnection? _connection;
    private InboxConsumer? _consumer;

    /// <summary><see langword="true"/> once the queue is declared and consumed.</summary>
    public bool IsConsuming => Volatile.Read(ref _consumer) is not null;

    /// <summary>The broker's host, for the health answer.</summary>
    public string BrokerHost => brokerUri.Host;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // Retried until it works or the host stops: every failure (unreachable, refused, a declaration that failed) is logged.
        var retry = new ResiliencePipelineBuilder().AddRetry(new RetryStrategyOptions
        {
            ShouldHandle = args => ValueTask.FromResult(args.Outcome.Exception is not null and not OperationCanceledException),
            MaxRetryAttempts = int.MaxValue,
            BackoffType = DelayBackoffType.Exponential,
            UseJitter = true,
            Delay = TimeSpan.FromMilliseconds(200),
            MaxDelay = TimeSpan.FromSeconds(5),
            OnRetry = args =>
            {
                _log.BrokerNotReady(args.Outcome.Exception!, brokerUri.Host, args.RetryDelay);
                return default;
            },
        }).Build();

        try
        {
            _connection = await retry.ExecuteAsync(ConnectAndDeclareAsync, stoppingToken);
            Volatile.Write(ref _consumer, await InboxConsumer.StartAsync(
                _connection,
                dataSource,
                new InboxConsumerOptions { Queue = ShippingService.Queue, Concurrency = 4 },
                (message, db, transaction, token) => handle(message, db, transaction, token),
                loggerFactory,
                stoppingToken));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            return;
        }

        // Ready means consuming: a message published from now on reaches the queue and is handled.
        lifetime.ApplicationStarted.Register(() =>
        {
            _log.Ready(ShippingService.Queue, OrderPlaced.Exchange, OrderPlaced.RoutingKey);
            var address = server.Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault();
            Console.WriteLine($"ready {address}");
        });
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        if (Interlocked.Exchange(ref _consumer, null) is { } consumer)
        {
            await consumer.DisposeAsync().AsTask().WaitAsync(cancellationToken);
        }

        if (Interlocked.Exchange(ref _connection, null) is { } connection)
        {
            await connection.DisposeAsync();
        }
    }

    private async ValueTask<IConnection> ConnectAndDeclareAsync(CancellationToken cancellationToken)
    {
        var factory = new ConnectionFactory { Uri = brokerUri, AutomaticRecoveryEnabled = true, TopologyRecoveryEnabled = true, ClientProvidedName = "shipping" };
        var connection = await factory.CreateConnectionAsync(cancellationToken);
        try
        {
            await using var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
            await RabbitMqTopology.DeclareConsumerQueueAsync(channel, OrderPlaced.Exchange, ShippingService.Queue, OrderPlaced.RoutingKey, cancellationToken: cancellationToken);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }
}
