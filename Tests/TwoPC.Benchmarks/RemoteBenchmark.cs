using System.Globalization;
using System.Net.Http.Json;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Npgsql;
using TwoPC.Benchmarks.Report;
using TwoPC.Client;
using TwoPC.Coordinator.Server;
using TwoPC.Participants.PostgreSql;
using TwoPC.Protocol;
using TwoPC.RemoteHost;
using TwoPC.TestServers;
using TwoPC.TestServers.Internal;
using TwoPC.Transactions;
using TwoPC.Wal;

namespace TwoPC.Benchmarks;

/// <summary>
/// Two services with a database each, one INSERT per service per transaction. The standalone
/// coordinator with two remote participant services (everything over loopback HTTP) against, in the
/// same run and on the same PostgreSQL server: (a) the embedded coordinator enlisting both databases
/// directly, and (b) two plain HTTP calls, each committing locally (not atomic).
/// </summary>
public static partial class RemoteBenchmark
{
    public static async Task<int> RunAsync(string[] args, ReportPoints? report = null)
    {
        var seconds = args.Length > 0 ? double.Parse(args[0], CultureInfo.InvariantCulture) : 3;
        var duration = TimeSpan.FromSeconds(seconds);
        await using var server = await PostgresServer.StartAsync(new PostgresServerOptions { MaxPreparedTransactions = 300, MaxConnections = 400 });
        var connA = await server.CreateDatabaseAsync("remote_a") + ";Maximum Pool Size=100";
        var connB = await server.CreateDatabaseAsync("remote_b") + ";Maximum Pool Size=100";
        var logs = Directory.CreateTempSubdirectory("twopc-remote-bench-");

        // Each ledger with its own port and key, configured on both sides (callbacks signed, as in production).
        var ledgers = new[] { ("ledger-a", connA), ("ledger-b", connB) }
            .Select(l => (Name: l.Item1, Connection: l.Item2, Port: FreePort.OnLoopback(), Key: Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32))))
            .ToArray();
        var coordinatorApp = CoordinatorServer.BuildApp([
            "--Urls=http://127.0.0.1:0", "--TwoPC:NodeId=remote-bench", $"--TwoPC:LogDirectory={Path.Combine(logs.FullName, "server")}",
            "--Coordinator:Authentication:AllowAnonymous=true",
            .. ledgers.SelectMany(l => new[] { $"--Coordinator:Participants:{l.Name}:CallbackUrl=http://127.0.0.1:{l.Port}/twopc", $"--Coordinator:Participants:{l.Name}:Key={l.Key}" }),
            "--Logging:LogLevel:Default=Warning",
        ]);
        await coordinatorApp.StartAsync();
        var coordinatorUrl = new Uri(coordinatorApp.Urls.First() + "/");
        var services = new List<WebApplication>();
        var urls = new List<Uri>();
        foreach (var (name, connection, port, key) in ledgers)
        {
            var app = LedgerService.Build([
                $"--Urls=http://127.0.0.1:{port}", $"--ConnectionString={connection}", $"--TwoPC:Participant:Name={name}",
                $"--TwoPC:Participant:CoordinatorUrl={coordinatorUrl}", $"--TwoPC:Participant:CallbackUrl=http://127.0.0.1:{port}/twopc",
                $"--TwoPC:Participant:Key={key}",
                "--Logging:LogLevel:Default=Warning",
            ]);
            await app.StartAsync();
            services.Add(app);
            urls.Add(new Uri($"http://127.0.0.1:{port}/"));
        }

        using var handler = new SocketsHttpHandler { MaxConnectionsPerServer = 256 };
        using var http = new HttpClient(handler, disposeHandler: false);
        var client = new TwoPCClient(new HttpClient(handler, disposeHandler: false) { BaseAddress = coordinatorUrl });

        await using var dsA = NpgsqlDataSource.Create(connA);
        await using var dsB = NpgsqlDataSource.Create(connB);
        using var rmA = await PostgresResourceManager.CreateAsync("embedded-a", dsA);
        using var rmB = await PostgresResourceManager.CreateAsync("embedded-b", dsB);
        await using var embedded = new TransactionCoordinator(new TransactionCoordinatorOptions { NodeId = "embedded-bench" },
            new FileTransactionLog(new FileTransactionLogOptions { Directory = Path.Combine(logs.FullName, "embedded") }), [rmA, rmB]);
        await embedded.StartAsync();

        Func<Task> remote = async () =>
        {
            await using var tx = await client.BeginAsync();
            await Task.WhenAll(PostAsync(http, urls[0], "entries", tx), PostAsync(http, urls[1], "entries", tx));
            var outcome = await tx.CommitAsync();
            if (outcome.Kind != OutcomeKindDto.Committed)
            {
                throw new InvalidOperationException($"remote benchmark transaction ended {outcome.Kind}: {outcome.Reason}");
            }
        };
        Func<Task> embeddedTransaction = async () =>
        {
            var tx = embedded.Begin();
            var ba = await rmA.EnlistAsync(tx);
            var bb = await rmB.EnlistAsync(tx);
            await Task.WhenAll(InsertAsync(ba.Connection, ba.Transaction), InsertAsync(bb.Connection, bb.Transaction));
            var outcome = await tx.CommitAsync();
            if (outcome.Kind != OutcomeKind.Committed)
            {
                throw new InvalidOperationException($"embedded benchmark transaction ended {outcome.Kind}: {outcome.Reason}");
            }
        };
        using var profile = new Profile();
        Func<Task> profiled = async () =>
        {
            var started = System.Diagnostics.Stopwatch.GetTimestamp();
            var step = started;
            await using var tx = await client.BeginAsync();
            profile.Step("1. begin (POST /transactions)", step);
            step = System.Diagnostics.Stopwatch.GetTimestamp();
            await Task.WhenAll(PostAsync(http, urls[0], "entries", tx), PostAsync(http, urls[1], "entries", tx));
            profile.Step("2. both branch calls, in parallel (join, INSERT, PREPARE)", step);
            step = System.Diagnostics.Stopwatch.GetTimestamp();
            var outcome = await tx.CommitAsync();
            profile.Step("3. commit (POST /transactions/{id}/commit)", step);
            profile.Step("transaction", started);
            if (outcome.Kind != OutcomeKindDto.Committed)
            {
                throw new InvalidOperationException($"remote benchmark transaction ended {outcome.Kind}: {outcome.Reason}");
            }
        };
        Func<Task> plain = () => Task.WhenAll(PostAsync(http, urls[0], "plain-entries", null), PostAsync(http, urls[1], "plain-entries", null));

        foreach (var variant in new[] { remote, embeddedTransaction, plain })
        {
            await Load.RunAsync(16, TimeSpan.FromSeconds(3), variant);
        }

        int[] concurrencies = [1, 8, 32];
        var rows = new List<(int Concurrency, Measurement Remote, Measurement Embedded, Measurement Plain)>();
        foreach (var concurrency in concurrencies)
        {
            var first = (R: await Load.RunAsync(concurrency, duration, remote), E: await Load.RunAsync(concurrency, duration, embeddedTransaction), P: await Load.RunAsync(concurrency, duration, plain));
            var p2 = await Load.RunAsync(concurrency, duration, plain);
            var e2 = await Load.RunAsync(concurrency, duration, embeddedTransaction);
            var r2 = await Load.RunAsync(concurrency, duration, remote);
            var (r, e, p) = (Measurement.Mean(first.R, r2), Measurement.Mean(first.E, e2), Measurement.Mean(first.P, p2));
            rows.Add((concurrency, r, e, p));
            report?.Add("remote", "remote (standalone coordinator)", concurrency, r);
            report?.Add("remote", "embedded coordinator", concurrency, e);
            report?.Add("remote", "2 plain HTTP calls", concurrency, p);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"c={concurrency}: remote {r.PerSecond:N0}/s, embedded {e.PerSecond:N0}/s, plain HTTP {p.PerSecond:N0}/s"));
        }

        var profileText = await profile.RunAsync(32, duration, profiled);
        Console.WriteLine(profileText);
        var table = new StringBuilder();
        table.AppendLine("| concurrent | remote TwoPC tx/s | p50 ms | p99 ms | embedded TwoPC tx/s | p50 ms | p99 ms | 2 plain HTTP calls/s | p50 ms | p99 ms | remote ÷ embedded | remote ÷ plain |");
        table.AppendLine("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var (c, r, e, p) in rows)
        {
            table.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {c} | {r.PerSecond:N0} | {r.P50:F2} | {r.P99:F2} | {e.PerSecond:N0} | {e.P50:F2} | {e.P99:F2} | {p.PerSecond:N0} | {p.P50:F2} | {p.P99:F2} | {r.PerSecond / e.PerSecond:F2} | {r.PerSecond / p.PerSecond:F2} |"));
        }

        Console.WriteLine();
        Console.WriteLine(table);
        var at32 = rows.Single(x => x.Concurrency == 32);
        var verdict = string.Create(CultureInfo.InvariantCulture,
            $"At 32 concurrent the standalone coordinator with two remote services runs at {at32.Remote.PerSecond / at32.Embedded.PerSecond:F2} × the embedded coordinator and {at32.Remote.PerSecond / at32.Plain.PerSecond:F2} × two non-atomic HTTP calls.")
            + string.Create(CultureInfo.InvariantCulture, $" A remote transaction makes {profile.RequestsPerTransaction:0.#} HTTP requests (the two branch calls included; profile below): begin, a registration per branch, the commit request (relaying the Yes votes the participants signed into their answers, so no prepare callback) and a commit callback per branch, plus the forced decision, all on the same 2 cores here.");
        Console.WriteLine(verdict);
        table.AppendLine().AppendLine("## Where the time goes").AppendLine().Append(profileText);
        ResultsFile.Write("remote.md", "Remote participants: the standalone coordinator over HTTP",
            $"dotnet run -c Release --project Tests/TwoPC.Benchmarks -- remote {seconds.ToString(CultureInfo.InvariantCulture)}",
            $"One private PostgreSQL {server.Version} server (fsync on), two databases. In one process, all on loopback: the standalone coordinator (CoordinatorServer, durable WAL) and two ledger services (Tests/TwoPC.RemoteHost, the remote participant SDK); each transaction inserts one row through each service. Remote: begin over HTTP, both branch calls in parallel (each joins, inserts, prepares and answers with its signed Yes vote, which the commit relays), commit over HTTP. Embedded: an in-process coordinator enlisting both databases directly (same SQL). Plain: the two services' non-transactional endpoint, each a local commit (not atomic). After a 3 s warm-up of every variant, each cell is measured twice ({seconds} s each, after a 1 s warm-up) in opposite orders and averaged.",
            table.ToString(), verdict, dataDirectory: server.DataDirectory);

        foreach (var app in services)
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }

        await coordinatorApp.StopAsync();
        await coordinatorApp.DisposeAsync();
        client.Http.Dispose();
        logs.Delete(recursive: true);
        return 0;
    }

    private static async Task PostAsync(HttpClient http, Uri service, string path, CoordinatorTransaction? tx)
    {
        var body = new { id = Guid.NewGuid().ToString("N"), amount = 1 };
        using var response = tx is null
            ? await http.PostAsJsonAsync(new Uri(service, path), body)
            : await http.PostInTransactionAsync(new Uri(service, path).AbsoluteUri, body, tx);
        if (!response.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"{service}{path} answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        }
    }

    private static async Task InsertAsync(NpgsqlConnection connection, NpgsqlTransaction transaction)
    {
        await using var command = new NpgsqlCommand("INSERT INTO entries (id, amount) VALUES ($1, 1)", connection, transaction);
        command.Parameters.AddWithValue(Guid.NewGuid().ToString("N"));
        await command.ExecuteNonQueryAsync();
    }
}
