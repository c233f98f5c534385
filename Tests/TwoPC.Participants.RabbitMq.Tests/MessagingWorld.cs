using Npgsql;
using RabbitMQ.Client;
using TwoPC.Participants.PostgreSql;
using TwoPC.Participants.RabbitMq.Tests.Infrastructure;
using TwoPC.Protocol;
using TwoPC.TestServers;
using TwoPC.Wal;

namespace TwoPC.Participants.RabbitMq.Tests;

/// <summary>
/// One test's world: a fresh database with an <c>items</c> table (a PostgreSQL resource manager), a
/// RabbitMQ publisher resource manager, a durable exchange with a quorum queue bound to it, and a
/// coordinator over a file write-ahead log.
/// </summary>
internal sealed class MessagingWorld : IAsyncDisposable
{
    private readonly DirectoryInfo _log = Directory.CreateTempSubdirectory("twopc-mq-log-");

    private MessagingWorld(RabbitMqServer broker, string connectionString, NpgsqlDataSource database)
    {
        Broker = broker;
        ConnectionString = connectionString;
        Database = database;
    }

    public RabbitMqServer Broker { get; }

    public string ConnectionString { get; }

    public NpgsqlDataSource Database { get; }

    public PostgresResourceManager Postgres { get; private set; } = null!;

    public RabbitMqResourceManager Rabbit { get; private set; } = null!;

    public IConnection Connection { get; private set; } = null!;

    public string Exchange { get; } = RabbitMqFixture.NewQueueName("ex");

    public string Queue { get; } = RabbitMqFixture.NewQueueName("q");

    public TransactionCoordinator Coordinator { get; private set; } = null!;

    public string LogDirectory => _log.FullName;

    public static async Task<MessagingWorld> CreateAsync(RabbitMqFixture fixture, RabbitMqServer? broker = null, Action<TransactionCoordinatorOptions>? configure = null, RabbitMqPublisherOptions? publisher = null)
    {
        broker ??= fixture.Broker;
        var connectionString = await fixture.CreateDatabaseAsync();
        var database = NpgsqlDataSource.Create(connectionString);
        await using (var setup = database.CreateCommand("CREATE TABLE items (id int PRIMARY KEY, value int NOT NULL); INSERT INTO items SELECT g, 0 FROM generate_series(1, 10) g; CREATE TABLE effects (message_id text NOT NULL, body text NOT NULL)"))
        {
            await setup.ExecuteNonQueryAsync();
        }

        var world = new MessagingWorld(broker, connectionString, database);
        world.Postgres = await PostgresResourceManager.CreateAsync("orders-db", database);
        world.Rabbit = await RabbitMqResourceManager.CreateAsync("events", Factory(broker), publisher);
        world.Connection = await Factory(broker).CreateConnectionAsync();
        await using (var channel = await world.Connection.CreateChannelAsync())
        {
            await RabbitMqTopology.DeclareConsumerQueueAsync(channel, world.Exchange, world.Queue, "order.*");
        }

        var options = new TransactionCoordinatorOptions
        {
            NodeId = "mq-tests",
            RetryBaseDelay = TimeSpan.FromMilliseconds(50),
            RetryMaxDelay = TimeSpan.FromMilliseconds(500),
            BranchCallTimeout = TimeSpan.FromSeconds(5),
            OrphanSafetyInterval = TimeSpan.FromMilliseconds(200),
            RecoveryInterval = TimeSpan.FromHours(1),
        };
        configure?.Invoke(options);
        world.Coordinator = new TransactionCoordinator(options, new FileTransactionLog(new FileTransactionLogOptions { Directory = world.LogDirectory }), [world.Postgres, world.Rabbit]);
        await world.Coordinator.StartAsync();
        return world;
    }

    public static ConnectionFactory Factory(RabbitMqServer broker) => new() { Uri = broker.AmqpUri, AutomaticRecoveryEnabled = true, NetworkRecoveryInterval = TimeSpan.FromMilliseconds(500) };

    /// <summary><see cref="DrainAsync"/>, retried for up to 20 s while the test's own connection recovers (a test that closed the broker's connections).</summary>
    public async Task<List<(string? MessageId, string Body, IDictionary<string, object?>? Headers, bool Persistent)>> DrainRecoveringAsync()
    {
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                return await DrainAsync();
            }
            catch (Exception) when (attempt < 40)
            {
                await Task.Delay(500);
            }
        }
    }

    /// <summary>Takes every message now in <paramref name="queue"/> (acknowledging them).</summary>
    public async Task<List<(string? MessageId, string Body, IDictionary<string, object?>? Headers, bool Persistent)>> DrainAsync(string? queue = null)
    {
        var messages = new List<(string?, string, IDictionary<string, object?>?, bool)>();
        await using var channel = await Connection.CreateChannelAsync();
        while (await channel.BasicGetAsync(queue ?? Queue, autoAck: true) is { } result)
        {
            messages.Add((result.BasicProperties.MessageId, System.Text.Encoding.UTF8.GetString(result.Body.Span), result.BasicProperties.Headers, result.BasicProperties.Persistent));
        }

        return messages;
    }

    /// <summary>The consumer tests' effects: <c>message_id:body</c> of every row of their <c>effects</c> table, by message id.</summary>
    public async Task<List<string>> EffectsAsync()
    {
        var effects = new List<string>();
        await using var query = Database.CreateCommand("SELECT message_id || ':' || body FROM effects ORDER BY message_id");
        await using var reader = await query.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            effects.Add(reader.GetString(0));
        }

        return effects;
    }

    /// <summary>Whether <paramref name="queue"/> (the world's queue by default) holds no message.</summary>
    public async Task<bool> QueueEmptyAsync(string? queue = null)
    {
        await using var channel = await Connection.CreateChannelAsync();
        return (await channel.QueueDeclarePassiveAsync(queue ?? Queue)).MessageCount == 0;
    }

    /// <summary>Whether <paramref name="queue"/> has a consumer (false while it is not declared yet).</summary>
    public async Task<bool> HasConsumerAsync(string queue)
    {
        try
        {
            await using var channel = await Connection.CreateChannelAsync();
            return await channel.ConsumerCountAsync(queue) > 0;
        }
        catch (RabbitMQ.Client.Exceptions.OperationInterruptedException)
        {
            return false;
        }
    }

    public async Task<int> ValueAsync(int id)
    {
        await using var command = Database.CreateCommand("SELECT value FROM items WHERE id = $1");
        command.Parameters.AddWithValue(id);
        return (int)(await command.ExecuteScalarAsync())!;
    }

    public async ValueTask DisposeAsync()
    {
        await Coordinator.DisposeAsync();
        await Rabbit.DisposeAsync();
        Postgres.Dispose();
        await Connection.DisposeAsync();
        await Database.DisposeAsync();
        _log.Delete(recursive: true);
    }
}
