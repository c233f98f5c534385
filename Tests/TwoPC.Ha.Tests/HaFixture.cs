using TwoPC.TestServers;

namespace TwoPC.Ha.Tests;

/// <summary>One private PostgreSQL server for the HA tests; each test creates its own three databases.</summary>
public sealed class HaFixture : IAsyncLifetime
{
    private PostgresServer? _server;

    public static PostgresServerOptions Options => new() { MaxPreparedTransactions = 64, MaxConnections = 300, Fsync = false };

    internal PostgresServer Server => _server ?? throw new InvalidOperationException("The PostgreSQL fixture has not started.");

    public async Task InitializeAsync() => _server = await PostgresServer.StartAsync(Options);

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }
}

[CollectionDefinition(Name)]
public sealed class HaCollection : ICollectionFixture<HaFixture>
{
    public const string Name = "ha";
}
