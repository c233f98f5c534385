using Dapper;
using Npgsql;
using TwoPC.Protocol;
using TwoPC.Wal;

namespace TwoPC.Participants.PostgreSql.Tests;

/// <summary>
/// Two fresh databases on the shared test server (an "orders" and a "payments" database), each with
/// an <c>items(id int primary key, value int)</c> table, registered as two resource managers with a
/// coordinator over a file write-ahead log in a temp directory.
/// </summary>
internal sealed class TwoDatabases : IAsyncDisposable
{
    private readonly DirectoryInfo _logDirectory;

    private TwoDatabases(NpgsqlDataSource a, NpgsqlDataSource b, PostgresResourceManager rmA, PostgresResourceManager rmB, DirectoryInfo logDirectory)
    {
        A = a;
        B = b;
        RmA = rmA;
        RmB = rmB;
        _logDirectory = logDirectory;
    }

    public NpgsqlDataSource A { get; }

    public NpgsqlDataSource B { get; }

    public PostgresResourceManager RmA { get; }

    public PostgresResourceManager RmB { get; }

    public string LogDirectory => _logDirectory.FullName;

    public TransactionCoordinator? Coordinator { get; private set; }

    public static async Task<TwoDatabases> CreateAsync(Infrastructure.PostgresFixture fixture, PostgresResourceManagerOptions? options = null)
    {
        var a = NpgsqlDataSource.Create(await fixture.Server.CreateDatabaseAsync());
        var b = NpgsqlDataSource.Create(await fixture.Server.CreateDatabaseAsync());
        foreach (var ds in new[] { a, b })
        {
            await using var c = await ds.OpenConnectionAsync();
            await c.ExecuteAsync("CREATE TABLE items (id int PRIMARY KEY, value int NOT NULL); INSERT INTO items SELECT g, 0 FROM generate_series(1, 10) g");
        }

        var rmA = await PostgresResourceManager.CreateAsync("orders", a, options);
        var rmB = await PostgresResourceManager.CreateAsync("payments", b, options);
        return new TwoDatabases(a, b, rmA, rmB, Directory.CreateTempSubdirectory("twopc-pg-log-"));
    }

    public async Task<TransactionCoordinator> StartCoordinatorAsync(Action<TransactionCoordinatorOptions>? configure = null)
    {
        var options = new TransactionCoordinatorOptions
        {
            NodeId = "pg-tests",
            RetryBaseDelay = TimeSpan.FromMilliseconds(20),
            RetryMaxDelay = TimeSpan.FromMilliseconds(500),
            OrphanSafetyInterval = TimeSpan.FromMilliseconds(200),
            RecoveryInterval = TimeSpan.FromHours(1),

            // These tests are about prepared branches (PREPARE, COMMIT/ROLLBACK PREPARED, recovery scans): both databases
            // are prepared and the decision is logged. The last-resource path (the default) has its own tests in LastResource/.
            LastResourceCommit = false,
        };
        configure?.Invoke(options);
        var log = new FileTransactionLog(new FileTransactionLogOptions { Directory = LogDirectory });
        Coordinator = new TransactionCoordinator(options, log, [RmA, RmB]);
        await Coordinator.StartAsync();
        return Coordinator;
    }

    public static async Task<int> ValueAsync(NpgsqlDataSource ds, int id)
    {
        await using var c = await ds.OpenConnectionAsync();
        return await c.ExecuteScalarAsync<int>("SELECT value FROM items WHERE id = @id", new { id });
    }

    public static async Task<long> PreparedCountAsync(NpgsqlDataSource ds)
    {
        await using var c = await ds.OpenConnectionAsync();
        return await c.ExecuteScalarAsync<long>("SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database()");
    }

    public async ValueTask DisposeAsync()
    {
        if (Coordinator is not null)
        {
            await Coordinator.DisposeAsync();
        }

        RmA.Dispose();
        RmB.Dispose();
        await A.DisposeAsync();
        await B.DisposeAsync();
        _logDirectory.Delete(recursive: true);
    }
}
