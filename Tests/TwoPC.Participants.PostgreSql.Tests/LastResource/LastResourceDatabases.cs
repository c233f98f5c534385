using System.Collections.Concurrent;
using System.Diagnostics;
using Dapper;
using Npgsql;
using TwoPC.Protocol;
using TwoPC.Testing;
using TwoPC.Transactions;
using TwoPC.Wal;

namespace TwoPC.Participants.PostgreSql.Tests.LastResource;

/// <summary>
/// Two fresh databases ("orders" = the last resource when enlisted first, "payments"), each with <c>items</c>, whose
/// data sources count every round trip (Npgsql's tracing filters see each command and batch), and a coordinator with
/// the last-resource commit on, over a file log that survives a restart of the coordinator.
/// </summary>
internal sealed class LastResourceDatabases : IAsyncDisposable
{
    private static readonly ActivityListener NpgsqlListener = StartListener();
    private readonly DirectoryInfo _logDirectory = Directory.CreateTempSubdirectory("twopc-lrc-log-");

    private LastResourceDatabases(Database a, Database b)
    {
        A = a;
        B = b;
    }

    public Database A { get; }

    public Database B { get; }

    public TransactionCoordinator? Coordinator { get; private set; }

    public static Task<LastResourceDatabases> CreateAsync(Infrastructure.PostgresFixture fixture, TimeProvider? clock = null) => CreateAsync(fixture.Server, clock);

    /// <summary>The two databases on <paramref name="server"/> (a test's private server, e.g. one it crashes).</summary>
    public static async Task<LastResourceDatabases> CreateAsync(TestServers.PostgresServer server, TimeProvider? clock = null)
    {
        _ = NpgsqlListener;
        return new LastResourceDatabases(await Database.CreateAsync("orders", await server.CreateDatabaseAsync(), clock), await Database.CreateAsync("payments", await server.CreateDatabaseAsync(), clock));
    }

    public async Task<TransactionCoordinator> StartCoordinatorAsync(Action<TransactionCoordinatorOptions>? configure = null, TimeProvider? clock = null)
    {
        if (Coordinator is { } previous)
        {
            await previous.DisposeAsync();
        }

        var options = new TransactionCoordinatorOptions
        {
            NodeId = "lrc-tests",
            LastResourceCommit = true,
            RetryBaseDelay = TimeSpan.FromMilliseconds(20),
            RetryMaxDelay = TimeSpan.FromMilliseconds(200),
            OrphanSafetyInterval = TimeSpan.FromMilliseconds(100),
            RecoveryInterval = TimeSpan.FromHours(1),
        };
        configure?.Invoke(options);
        Coordinator = new TransactionCoordinator(options, new FileTransactionLog(new FileTransactionLogOptions { Directory = _logDirectory.FullName }), [A.Rm, B.Rm], timeProvider: clock);
        await Coordinator.StartAsync();
        return Coordinator;
    }

    /// <summary>Begins a transaction adding 1 to items row 1 in A (enlisted first: the last resource), then B.</summary>
    public async Task<(GlobalTransaction Tx, PostgresBranch BranchA, PostgresBranch BranchB)> BeginIncrementAsync(TransactionCoordinator coordinator)
    {
        var tx = coordinator.Begin();
        var a = await A.Rm.EnlistAsync(tx);
        await a.Connection.ExecuteAsync("UPDATE items SET value = value + 1 WHERE id = 1", transaction: a.Transaction);
        var b = await B.Rm.EnlistAsync(tx);
        await b.Connection.ExecuteAsync("UPDATE items SET value = value + 1 WHERE id = 1", transaction: b.Transaction);
        return (tx, a, b);
    }

    public async Task<(int A, int B)> ValuesAsync() => (await A.ValueAsync(), await B.ValueAsync());

    public async ValueTask DisposeAsync()
    {
        if (Coordinator is { } coordinator)
        {
            await coordinator.DisposeAsync();
        }

        await A.DisposeAsync();
        await B.DisposeAsync();
        _logDirectory.Delete(recursive: true);
    }

    private static ActivityListener StartListener()
    {
        // Npgsql calls its tracing filters (which count here) only while something listens to its activities.
        var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == "Npgsql",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.PropagationData,
        };
        ActivitySource.AddActivityListener(listener);
        return listener;
    }

    public sealed class Database : IAsyncDisposable
    {
        private Database(string name, NpgsqlDataSource dataSource, PostgresResourceManager rm, ConcurrentQueue<string> statements)
        {
            Name = name;
            DataSource = dataSource;
            Rm = rm;
            Statements = statements;
        }

        public string Name { get; }

        public NpgsqlDataSource DataSource { get; }

        public PostgresResourceManager Rm { get; }

        /// <summary>Every round trip's SQL (a batch's commands joined with " ; "), in order.</summary>
        public ConcurrentQueue<string> Statements { get; }

        public static async Task<Database> CreateAsync(string name, string connectionString, TimeProvider? clock)
        {
            var statements = new ConcurrentQueue<string>();
            var builder = new NpgsqlDataSourceBuilder(connectionString);
            builder.ConfigureTracing(o => o
                .ConfigureCommandFilter(command =>
                {
                    statements.Enqueue(command.CommandText);
                    return true;
                })
                .ConfigureBatchFilter((NpgsqlBatch batch) =>
                {
                    statements.Enqueue(string.Join(" ; ", batch.BatchCommands.Select(static (NpgsqlBatchCommand c) => c.CommandText)));
                    return true;
                }));
            var dataSource = builder.Build();
            await using (var c = await dataSource.OpenConnectionAsync())
            {
                await c.ExecuteAsync("CREATE TABLE items (id int PRIMARY KEY, value int NOT NULL); INSERT INTO items SELECT g, 0 FROM generate_series(1, 10) g");
            }

            var rm = await PostgresResourceManager.CreateAsync(name, dataSource, timeProvider: clock);
            return new Database(name, dataSource, rm, statements);
        }

        public async Task<int> ValueAsync()
        {
            await using var c = await DataSource.OpenConnectionAsync();
            return await c.ExecuteScalarAsync<int>("SELECT value FROM items WHERE id = 1");
        }

        public async Task<long> PreparedAsync()
        {
            await using var c = await DataSource.OpenConnectionAsync();
            return await c.ExecuteScalarAsync<long>("SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database()");
        }

        /// <summary>The marker state of <paramref name="id"/> ('C', 'A'), or null when there is none (or no table yet).</summary>
        public async Task<string?> MarkerAsync(GlobalTransactionId id)
        {
            await using var c = await DataSource.OpenConnectionAsync();
            return await CommitMarkerTable.StateAsync(c, id.ToString());
        }

        public async Task<long> MarkerCountAsync(string state = "C")
        {
            await using var c = await DataSource.OpenConnectionAsync();
            return await c.ExecuteScalarAsync<bool>("SELECT to_regclass('twopc.commit_markers') IS NOT NULL")
                ? await c.ExecuteScalarAsync<long>("SELECT count(*) FROM twopc.commit_markers WHERE state = @state", new { state })
                : 0;
        }

        public async ValueTask DisposeAsync()
        {
            Rm.Dispose();
            await DataSource.DisposeAsync();
        }
    }
}
