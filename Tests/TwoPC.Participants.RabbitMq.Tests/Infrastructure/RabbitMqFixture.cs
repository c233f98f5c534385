using TwoPC.TestServers;

namespace TwoPC.Participants.RabbitMq.Tests.Infrastructure;

/// <summary>
/// One private RabbitMQ node and one private PostgreSQL server shared by every test class in the
/// "rabbitmq" collection (started once per test assembly, in parallel). The RabbitMQ participant
/// keeps its outbox/prepared state in PostgreSQL, so its tests need both. Each class uses its own
/// queue names and creates its own database with <see cref="CreateDatabaseAsync"/>. Tests that
/// stop, restart or reconfigure a broker start their own <see cref="RabbitMqServer"/> instead.
/// </summary>
/// <remarks>
/// Tests of one collection run one at a time; a test may call
/// <see cref="RabbitMqServer.CloseAllConnectionsAsync"/> on the shared broker, so classes must not
/// keep connections open from one test to the next.
/// </remarks>
public sealed class RabbitMqFixture : IAsyncLifetime
{
    private RabbitMqServer? _broker;
    private PostgresServer? _postgres;

    /// <summary>The shared RabbitMQ node; started before the first test of the collection runs.</summary>
    public RabbitMqServer Broker => _broker ?? throw new InvalidOperationException("The RabbitMQ fixture has not started.");

    /// <summary>The shared PostgreSQL server; started before the first test of the collection runs.</summary>
    public PostgresServer Postgres => _postgres ?? throw new InvalidOperationException("The RabbitMQ fixture has not started.");

    /// <summary>The options the shared broker runs with.</summary>
    public static RabbitMqServerOptions BrokerOptions => new();

    /// <summary>The options the shared PostgreSQL server runs with (as in the PostgreSQL participant's tests).</summary>
    public static PostgresServerOptions PostgresOptions => new()
    {
        MaxPreparedTransactions = 64,
        MaxConnections = 200,
        // Tests crash server processes, not the machine: fsync adds only time.
        Fsync = false,
    };

    /// <summary>Creates a fresh, uniquely named database on the shared PostgreSQL server and returns its connection string.</summary>
    public Task<string> CreateDatabaseAsync() => Postgres.CreateDatabaseAsync();

    /// <summary>A queue name no other test uses.</summary>
    public static string NewQueueName(string prefix = "test") => prefix + "-" + Guid.NewGuid().ToString("N")[..12];

    public async Task InitializeAsync()
    {
        var broker = RabbitMqServer.StartAsync(BrokerOptions);
        var postgres = PostgresServer.StartAsync(PostgresOptions);
        try
        {
            await Task.WhenAll(broker, postgres);
        }
        catch
        {
            // xunit does not dispose a fixture whose initialization failed: stop whichever started.
            if (broker.IsCompletedSuccessfully)
            {
                await broker.Result.DisposeAsync();
            }

            if (postgres.IsCompletedSuccessfully)
            {
                await postgres.Result.DisposeAsync();
            }

            throw;
        }

        _broker = broker.Result;
        _postgres = postgres.Result;
    }

    public async Task DisposeAsync()
    {
        var broker = _broker;
        var postgres = _postgres;
        await Task.WhenAll(
            broker is null ? Task.CompletedTask : broker.DisposeAsync().AsTask(),
            postgres is null ? Task.CompletedTask : postgres.DisposeAsync().AsTask());
    }
}

/// <summary>Test classes marked <c>[Collection(RabbitMqCollection.Name)]</c> share one <see cref="RabbitMqFixture"/>.</summary>
[CollectionDefinition(Name)]
public sealed class RabbitMqCollection : ICollectionFixture<RabbitMqFixture>
{
    public const string Name = "rabbitmq";
}
