using System.Runtime.InteropServices;
using Dapper;
using Npgsql;
using TwoPC.Testing;
using TwoPC.TestServers;

namespace TwoPC.Ha.Tests;

/// <summary>
/// One PostgreSQL server holding the shared log's database and two resource databases (each with
/// <c>items(id, value)</c>, rows 1-10 at 0), and the coordinator node processes started on them (Tests/TwoPC.CrashHost
/// <c>ha-node</c>). Lease 2 s, renewed every 0.5 s, takeover checked every 0.25 s.
/// </summary>
internal sealed class HaCluster : IAsyncDisposable
{
    public static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);
    private readonly List<CrashHostProcess> _nodes = [];
    private readonly bool _ownsServer;

    private HaCluster(PostgresServer server, bool ownsServer, string log, string a, string b)
    {
        Server = server;
        _ownsServer = ownsServer;
        Log = log;
        A = a;
        B = b;
    }

    public PostgresServer Server { get; }

    public string Log { get; }

    public string A { get; }

    public string B { get; }

    public static async Task<HaCluster> CreateAsync(PostgresServer server, bool ownsServer = false)
    {
        var log = await server.CreateDatabaseAsync();
        var a = await server.CreateDatabaseAsync();
        var b = await server.CreateDatabaseAsync();
        foreach (var db in new[] { a, b })
        {
            await using var c = new NpgsqlConnection(db);
            await c.ExecuteAsync("CREATE TABLE items (id int PRIMARY KEY, value int NOT NULL); INSERT INTO items SELECT g, 0 FROM generate_series(1, 10) g");
        }

        return new HaCluster(server, ownsServer, log, a, b);
    }

    /// <summary>Starts a node and waits until it has recovered and holds its lease.</summary>
    public async Task<CrashHostProcess> StartNodeAsync(string node, params string[] extra)
    {
        // The first occurrence of an argument wins, so extra arguments override the lease defaults after them.
        var process = CrashHostProcess.Start(["ha-node", "--node", node, "--log", Log, "--db-a", A, "--db-b", B, .. extra, "--lease-ms", "2000", "--renew-ms", "500"]);
        _nodes.Add(process);
        Assert.NotNull(await process.WaitForLineAsync(Wait, "STARTED"));
        return process;
    }

    public async Task<long> PreparedAsync()
    {
        long total = 0;
        foreach (var db in new[] { A, B })
        {
            await using var c = new NpgsqlConnection(db);
            total += await c.ExecuteScalarAsync<long>("SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database()");
        }

        return total;
    }

    public async Task<(long A, long B)> SumsAsync()
    {
        await using var a = new NpgsqlConnection(A);
        await using var b = new NpgsqlConnection(B);
        return (await a.ExecuteScalarAsync<long>("SELECT sum(value) FROM items"), await b.ExecuteScalarAsync<long>("SELECT sum(value) FROM items"));
    }

    /// <summary>When the node's lease expires (or expired), on the database clock, and the database's now.</summary>
    public async Task<(DateTime ExpiresAt, DateTime Now, long Epoch)> LeaseAsync(string node)
    {
        await using var c = new NpgsqlConnection(Log);
        return await c.QuerySingleAsync<(DateTime, DateTime, long)>("SELECT expires_at, now(), epoch FROM twopc.nodes WHERE node_id = @node", new { node });
    }

    public async Task<long> DecisionsAsync(string gtrid)
    {
        await using var c = new NpgsqlConnection(Log);
        return await c.ExecuteScalarAsync<long>("SELECT count(*) FROM twopc.decisions WHERE gtrid = @gtrid", new { gtrid });
    }

    public async Task<DateTime> DatabaseNowAsync()
    {
        await using var c = new NpgsqlConnection(Log);
        return await c.ExecuteScalarAsync<DateTime>("SELECT now()");
    }

    public static void Stop(CrashHostProcess process) => Signal(process, 19);

    public static void Continue(CrashHostProcess process) => Signal(process, 18);

    public string Describe() => string.Join("\n---\n", _nodes.Select(n => n.Describe()));

    public async ValueTask DisposeAsync()
    {
        foreach (var node in _nodes)
        {
            Signal(node, 18, ignoreErrors: true);
            node.Dispose();
        }

        if (_ownsServer)
        {
            await Server.DisposeAsync();
        }
    }

    private static void Signal(CrashHostProcess process, int signal, bool ignoreErrors = false)
    {
        if (kill(process.ProcessId, signal) != 0 && !ignoreErrors)
        {
            throw new InvalidOperationException($"kill({process.ProcessId}, {signal}) failed: errno {Marshal.GetLastPInvokeError()}");
        }
    }

    [DllImport("libc", SetLastError = true)]
#pragma warning disable SYSLIB1054, CA5392 // a test helper: one libc call, no marshalling
    private static extern int kill(int pid, int sig);
#pragma warning restore SYSLIB1054, CA5392
}
