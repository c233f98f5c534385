using TwoPC.TestServers;

namespace TwoPC.Participants.PostgreSql.Tests.Infrastructure;

/// <summary>
/// One private PostgreSQL server shared by every test class in the "postgres" collection (started
/// once per test assembly). Each class creates its own database with <see cref="CreateDatabaseAsync"/>.
/// Tests that crash or reconfigure a server start their own <see cref="PostgresServer"/> instead.
/// </summary>
public sealed class PostgresFixture : IAsyncLifetime
{
    private PostgresServer? _server;

    /// <summary>The shared server; started before the first test of the collection runs.</summary>
    public PostgresServer Server => _server ?? throw new InvalidOperationException("The PostgreSQL fixture has not started.");

    /// <summary>The options the shared server runs with.</summary>
    public static PostgresServerOptions Options => new()
    {
        MaxPreparedTransactions = 64,
        MaxConnections = 200,
        // Tests crash the server processes, not the machine: the page cache survives, so fsync
        // adds only time.
        Fsync = false,
    };

    /// <summary>Creates a fresh, uniquely named database on the shared server and returns its connection string.</summary>
    public Task<string> CreateDatabaseAsync() => Server.CreateDatabaseAsync();

    public async Task InitializeAsync() => _server = await PostgresServer.StartAsync(Options);

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }
}

/// <summary>Test classes marked <c>[Collection(PostgresCollection.Name)]</c> share one <see cref="PostgresFixture"/>.</summary>
[CollectionDefinition(Name)]
public sealed class PostgresCollection : ICollectionFixture<PostgresFixture>
{
    public const string Name = "postgres";
}
