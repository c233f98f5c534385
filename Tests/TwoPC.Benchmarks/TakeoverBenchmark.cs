using System.Globalization;
using System.Text;
using Npgsql;
using TwoPC.Testing;
using TwoPC.TestServers;

namespace TwoPC.Benchmarks;

/// <summary>
/// High availability: two coordinator node processes (Tests/TwoPC.CrashHost <c>ha-node</c>) on the shared PostgreSQL log
/// with the library's default lease settings (lease 10 s, renewed every 3 s, takeover checked every 1 s). One node
/// begins a transfer across two databases and is SIGKILLed at a protocol step; the time measured is from its lease's
/// expiry (the database clock) until the other node has resolved both branches (nothing left in
/// <c>pg_prepared_xacts</c>). Two cases: killed after its decision was logged (the survivor commits), and killed between
/// prepare and decision (the survivor rolls back).
/// </summary>
public static class TakeoverBenchmark
{
    private static readonly TimeSpan Goal = TimeSpan.FromSeconds(5);
    private static readonly (string Name, string[] Crash)[] Cases =
    [
        ("killed after the decision (commit)", ["--crash-step", "DecisionLogged"]),
        ("killed before the decision (roll back)", ["--crash-step", "AfterPrepare", "--crash-k", "2"]),
    ];

    public static async Task<int> RunAsync(string[] args)
    {
        var runs = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 3;
        await using var server = await PostgresServer.StartAsync(new PostgresServerOptions { MaxPreparedTransactions = 64, Fsync = false });
        var table = new StringBuilder("| case | runs | median (s after lease expiry) | min | max | kill → resolved, median (s) |\n| --- | ---: | ---: | ---: | ---: | ---: |\n");
        var worst = TimeSpan.Zero;
        foreach (var (name, crash) in Cases)
        {
            var afterExpiry = new List<double>();
            var afterKill = new List<double>();
            for (var run = 0; run < runs; run++)
            {
                var (expiry, kill) = await OneAsync(server, crash);
                afterExpiry.Add(expiry.TotalSeconds);
                afterKill.Add(kill.TotalSeconds);
                Console.WriteLine($"{name}, run {run + 1}: resolved {expiry.TotalSeconds:0.00} s after the lease expired ({kill.TotalSeconds:0.00} s after the kill)");
            }

            var median = Median(afterExpiry);
            worst = TimeSpan.FromSeconds(Math.Max(worst.TotalSeconds, median));
            table.Append(CultureInfo.InvariantCulture, $"| {name} | {runs} | {median:0.00} | {afterExpiry.Min():0.00} | {afterExpiry.Max():0.00} | {Median(afterKill):0.00} |\n");
        }

        Console.WriteLine(table);
        var met = worst <= Goal;
        ResultsFile.Write(
            "takeover.md",
            "Takeover: a dead coordinator node's in-doubt branches resolved by another node",
            $"dotnet run -c Release --project Tests/TwoPC.Benchmarks -- takeover {runs}",
            "Two coordinator node processes on one shared PostgreSQL log (TwoPC.Durability.PostgreSql) and two resource databases on one private PostgreSQL server (fsync off), default lease settings: lease 10 s, renewal every 3 s, takeover check every 1 s. Per run: a fresh log and databases, node B started, node A begins one transfer (an UPDATE in each database) and is SIGKILLed at the named protocol step; measured on the database clock from A's lease expiry until B has resolved both branches (committed or rolled back, nothing left in pg_prepared_xacts).",
            table.ToString(),
            $"Goal: in-doubt branches resolved ≤ {Goal.TotalSeconds:0} s after the lease expires, with the default lease settings. Worst median: {worst.TotalSeconds:0.00} s — {(met ? "met" : "NOT met")}.");
        return 0;
    }

    private static async Task<(TimeSpan AfterExpiry, TimeSpan AfterKill)> OneAsync(PostgresServer server, string[] crash)
    {
        var log = await server.CreateDatabaseAsync();
        var a = await server.CreateDatabaseAsync();
        var b = await server.CreateDatabaseAsync();
        foreach (var db in new[] { a, b })
        {
            await using var setup = NpgsqlDataSource.Create(db);
            await setup.CreateCommand("CREATE TABLE items (id int PRIMARY KEY, value int NOT NULL); INSERT INTO items SELECT g, 0 FROM generate_series(1, 10) g").ExecuteNonQueryAsync();
        }

        string[] common = ["--log", log, "--db-a", a, "--db-b", b, "--lease-ms", "10000", "--renew-ms", "3000", "--takeover-ms", "1000"];
        using var survivor = CrashHostProcess.Start(["ha-node", "--node", "bench-b", .. common]);
        await Expect(survivor, "STARTED");
        using var victim = CrashHostProcess.Start(["ha-node", "--node", "bench-a", "--transactions", "1", .. crash, .. common]);
        await Expect(victim, "CRASHPOINT");
        victim.Kill();
        await using var logDb = NpgsqlDataSource.Create(log);
        await using var leaseQuery = logDb.CreateCommand("SELECT expires_at, now() FROM twopc.nodes WHERE node_id = 'bench-a'");
        DateTime expiresAt, killedAt;
        await using (var reader = await leaseQuery.ExecuteReaderAsync())
        {
            await reader.ReadAsync();
            expiresAt = reader.GetDateTime(0);
            killedAt = reader.GetDateTime(1);
        }

        while (await PreparedAsync(a) + await PreparedAsync(b) > 0)
        {
            await Task.Delay(20);
        }

        var resolvedAt = (DateTime)(await logDb.CreateCommand("SELECT now()").ExecuteScalarAsync())!;
        return (resolvedAt - expiresAt, resolvedAt - killedAt);
    }

    private static async Task Expect(CrashHostProcess process, string prefix)
    {
        if (await process.WaitForLineAsync(TimeSpan.FromSeconds(60), prefix) is null)
        {
            throw new InvalidOperationException($"The node exited before printing {prefix}.\n{process.Describe()}");
        }
    }

    private static async Task<long> PreparedAsync(string connectionString)
    {
        await using var dataSource = NpgsqlDataSource.Create(connectionString);
        return (long)(await dataSource.CreateCommand("SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database()").ExecuteScalarAsync())!;
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[(sorted.Count / 2) - 1] + sorted[sorted.Count / 2]) / 2;
    }
}
