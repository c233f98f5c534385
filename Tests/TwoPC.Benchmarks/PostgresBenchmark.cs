using System.Globalization;
using System.Text;
using Npgsql;
using TwoPC.Benchmarks.Report;
using TwoPC.Participants.PostgreSql;
using TwoPC.Protocol;
using TwoPC.TestServers;
using TwoPC.Transactions;
using TwoPC.Wal;

namespace TwoPC.Benchmarks;

/// <summary>
/// Two databases, one UPDATE each, per transaction. TwoPC (coordinator + durable WAL + PostgreSQL
/// participant), and TwoPC with the last-resource commit (one database prepared, the other committed in one phase
/// with a commit marker: the decision, no WAL force) against, in the same run and on the same server: (a) "raw 2PC" — the same SQL with
/// PREPARE TRANSACTION / COMMIT PREPARED and no coordinator or log — and (b) two independent one-phase
/// commits (not atomic).
/// </summary>
public static class PostgresBenchmark
{
    private const int Rows = 10_000;

    public static async Task<int> RunAsync(string[] args, ReportPoints? report = null)
    {
        var seconds = args.Length > 0 ? double.Parse(args[0], CultureInfo.InvariantCulture) : 4;
        var duration = TimeSpan.FromSeconds(seconds);
        await using var server = await PostgresServer.StartAsync(new PostgresServerOptions { MaxPreparedTransactions = 300, MaxConnections = 400 });
        var connA = await server.CreateDatabaseAsync("bench_a");
        var connB = await server.CreateDatabaseAsync("bench_b");
        await using var a = NpgsqlDataSource.Create(connA + ";Maximum Pool Size=150");
        await using var b = NpgsqlDataSource.Create(connB + ";Maximum Pool Size=150");
        foreach (var ds in new[] { a, b })
        {
            await using var setup = ds.CreateCommand($"CREATE TABLE items (id int PRIMARY KEY, value bigint NOT NULL); INSERT INTO items SELECT g, 0 FROM generate_series(1, {Rows}) g");
            await setup.ExecuteNonQueryAsync();
        }

        using var rmA = await PostgresResourceManager.CreateAsync("bench-a", a);
        using var rmB = await PostgresResourceManager.CreateAsync("bench-b", b);

        // The same databases with SET LOCAL lock/statement timeouts per branch (one more round trip each), to show what
        // leaving the deadline to the coordinator's reaper saves.
        var setLocal = new PostgresResourceManagerOptions { BoundLockWaitsByDeadline = true };
        using var rmASetLocal = await PostgresResourceManager.CreateAsync("bench-a-set-local", a, setLocal);
        using var rmBSetLocal = await PostgresResourceManager.CreateAsync("bench-b-set-local", b, setLocal);
        var logDirectory = Directory.CreateTempSubdirectory("twopc-pg-bench-");
        await using var coordinator = new TransactionCoordinator(new TransactionCoordinatorOptions { NodeId = "pg-bench", LastResourceCommit = false },
            new FileTransactionLog(new FileTransactionLogOptions { Directory = logDirectory.FullName }), [rmA, rmB, rmASetLocal, rmBSetLocal]);
        await coordinator.StartAsync();

        // The same resource managers under a second coordinator with the last-resource commit on (its own node id and log).
        var lrcLogDirectory = Directory.CreateTempSubdirectory("twopc-pg-bench-lrc-");
        await using var lrcCoordinator = new TransactionCoordinator(new TransactionCoordinatorOptions { NodeId = "pg-bench-lrc", LastResourceCommit = true },
            new FileTransactionLog(new FileTransactionLogOptions { Directory = lrcLogDirectory.FullName }), [rmA, rmB]);
        await lrcCoordinator.StartAsync();
        long rawSequence = 0;

        Func<Task> twoPCTransaction = () => TwoPCTransactionAsync(coordinator, rmA, rmB);
        Func<Task> twoPCSetLocalTransaction = () => TwoPCTransactionAsync(coordinator, rmASetLocal, rmBSetLocal);
        Func<Task> lastResourceTransaction = () => TwoPCTransactionAsync(lrcCoordinator, rmA, rmB);
        Func<Task> rawTransaction = async () =>
        {
            var id = Random.Shared.Next(1, Rows + 1);
            var gid = "raw-" + Interlocked.Increment(ref rawSequence).ToString(CultureInfo.InvariantCulture);
            await using var ca = await a.OpenConnectionAsync();
            await using var cb = await b.OpenConnectionAsync();
            await using (var ta = await ca.BeginTransactionAsync())
            await using (var tb = await cb.BeginTransactionAsync())
            {
                await UpdateAsync(ca, ta, id);
                await UpdateAsync(cb, tb, id);
                await Task.WhenAll(ExecuteAsync(ca, ta, $"PREPARE TRANSACTION '{gid}-a'"), ExecuteAsync(cb, tb, $"PREPARE TRANSACTION '{gid}-b'"));
            }

            await Task.WhenAll(ExecuteAsync(ca, null, $"COMMIT PREPARED '{gid}-a'"), ExecuteAsync(cb, null, $"COMMIT PREPARED '{gid}-b'"));
        };
        Func<Task> onePhaseTransactions = async () =>
        {
            var id = Random.Shared.Next(1, Rows + 1);
            await using var ca = await a.OpenConnectionAsync();
            await using var cb = await b.OpenConnectionAsync();
            await using var ta = await ca.BeginTransactionAsync();
            await using var tb = await cb.BeginTransactionAsync();
            await UpdateAsync(ca, ta, id);
            await UpdateAsync(cb, tb, id);
            await Task.WhenAll(ta.CommitAsync(), tb.CommitAsync());
        };

        // The server, the pools and the JIT need a while to reach a steady state (measured: the first
        // seconds run at a third of the later rate), so warm every variant up before any cell counts.
        foreach (var variant in new[] { twoPCTransaction, lastResourceTransaction, twoPCSetLocalTransaction, rawTransaction, onePhaseTransactions })
        {
            await Load.RunAsync(32, TimeSpan.FromSeconds(4), variant);
        }

        int[] concurrencies = [1, 8, 32, 64];
        var rows = new List<(int Concurrency, Measurement TwoPC, Measurement Lrc, Measurement SetLocal, Measurement Raw, Measurement OnePhase)>();
        foreach (var concurrency in concurrencies)
        {
            // Two rounds in opposite orders, averaged, so no variant always runs first or last.
            var first = (T: await Load.RunAsync(concurrency, duration, twoPCTransaction), L: await Load.RunAsync(concurrency, duration, lastResourceTransaction), S: await Load.RunAsync(concurrency, duration, twoPCSetLocalTransaction),
                R: await Load.RunAsync(concurrency, duration, rawTransaction), O: await Load.RunAsync(concurrency, duration, onePhaseTransactions));
            var o2 = await Load.RunAsync(concurrency, duration, onePhaseTransactions);
            var r2 = await Load.RunAsync(concurrency, duration, rawTransaction);
            var s2 = await Load.RunAsync(concurrency, duration, twoPCSetLocalTransaction);
            var l2 = await Load.RunAsync(concurrency, duration, lastResourceTransaction);
            var t2 = await Load.RunAsync(concurrency, duration, twoPCTransaction);
            var (twoPC, lrc, withSetLocal, raw, onePhase) = (Measurement.Mean(first.T, t2), Measurement.Mean(first.L, l2), Measurement.Mean(first.S, s2), Measurement.Mean(first.R, r2), Measurement.Mean(first.O, o2));
            rows.Add((concurrency, twoPC, lrc, withSetLocal, raw, onePhase));
            report?.Add("postgres", "TwoPC", concurrency, twoPC);
            report?.Add("postgres", "TwoPC-LRC", concurrency, lrc);
            report?.Add("postgres", "TwoPC + SET LOCAL", concurrency, withSetLocal);
            report?.Add("postgres", "raw 2PC", concurrency, raw);
            report?.Add("postgres", "two one-phase commits", concurrency, onePhase);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"c={concurrency}: TwoPC {twoPC.PerSecond:N0}/s, TwoPC-LRC {lrc.PerSecond:N0}/s, with SET LOCAL {withSetLocal.PerSecond:N0}/s, raw 2PC {raw.PerSecond:N0}/s, two one-phase commits {onePhase.PerSecond:N0}/s"));
        }

        var table = new StringBuilder();
        table.AppendLine("| concurrent | TwoPC tx/s | p50 ms | p99 ms | TwoPC-LRC tx/s | p50 ms | p99 ms | TwoPC + SET LOCAL tx/s | p50 ms | raw 2PC tx/s | p50 ms | p99 ms | 2 × one-phase tx/s | p50 ms | p99 ms | TwoPC ÷ raw 2PC | TwoPC ÷ one-phase | TwoPC-LRC ÷ raw 2PC | TwoPC-LRC ÷ one-phase | TwoPC ÷ TwoPC + SET LOCAL |");
        table.AppendLine("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var (c, t, l, sl, r, o) in rows)
        {
            table.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {c} | {t.PerSecond:N0} | {t.P50:F2} | {t.P99:F2} | {l.PerSecond:N0} | {l.P50:F2} | {l.P99:F2} | {sl.PerSecond:N0} | {sl.P50:F2} | {r.PerSecond:N0} | {r.P50:F2} | {r.P99:F2} | {o.PerSecond:N0} | {o.P50:F2} | {o.P99:F2} | {t.PerSecond / r.PerSecond:F2} | {t.PerSecond / o.PerSecond:F2} | {l.PerSecond / r.PerSecond:F2} | {l.PerSecond / o.PerSecond:F2} | {t.PerSecond / sl.PerSecond:F2} |"));
        }

        // Where the time goes at 32 concurrent: CPU per transaction on each side (the machine has 2 cores for both).
        var meter = new CpuMeter(server.DataDirectory);
        table.AppendLine();
        table.AppendLine("CPU per transaction at 32 concurrent (one more cell per variant; client = this process: coordinator, Npgsql, load loop; server = the PostgreSQL server's processes), and how busy the machine's cores were:");
        table.AppendLine();
        table.AppendLine("| variant | tx/s | client CPU ms/tx | server CPU ms/tx | total CPU ms/tx | cores busy |");
        table.AppendLine("|---|---:|---:|---:|---:|---:|");
        foreach (var (name, variant) in new[] { ("TwoPC", twoPCTransaction), ("TwoPC-LRC", lastResourceTransaction), ("raw 2PC", rawTransaction), ("two one-phase commits", onePhaseTransactions) })
        {
            long count = 0;
            var before = meter.Read();
            var started = System.Diagnostics.Stopwatch.GetTimestamp();
            var measured = await Load.RunAsync(32, duration, async () =>
            {
                await variant();
                Interlocked.Increment(ref count);
            });
            var wall = System.Diagnostics.Stopwatch.GetElapsedTime(started);
            var after = meter.Read();
            var client = (after.Client - before.Client).TotalMilliseconds / count;
            var serverCpu = (after.Server - before.Server).TotalMilliseconds / count;
            var busy = ((after.Client - before.Client) + (after.Server - before.Server)) / (wall * Environment.ProcessorCount);
            table.AppendLine(string.Create(CultureInfo.InvariantCulture, $"| {name} | {measured.PerSecond:N0} | {client:F3} | {serverCpu:F3} | {client + serverCpu:F3} | {busy:P0} |"));
        }

        Console.WriteLine();
        Console.WriteLine(table);
        var at32 = rows.Single(r => r.Concurrency == 32);
        var ratio = at32.TwoPC.PerSecond / at32.Raw.PerSecond;
        var lrcRaw = at32.Lrc.PerSecond / at32.Raw.PerSecond;
        var lrcOnePhase = at32.Lrc.PerSecond / at32.OnePhase.PerSecond;
        var lrcVerdict = string.Create(CultureInfo.InvariantCulture,
            $"With the last-resource commit (TwoPC-LRC: 1 PREPARE + 1 INSERT marker/COMMIT + 1 COMMIT PREPARED, no WAL force) TwoPC runs at {lrcRaw:F2} × raw 2PC (goal ≥ 1.0: {(lrcRaw >= 1.0 ? "met" : "NOT met")}) and {lrcOnePhase:F2} × two non-atomic one-phase commits (goal ≥ 0.70: {(lrcOnePhase >= 0.70 ? "met" : "NOT met")}) at 32 concurrent. ");
        var verdict = lrcVerdict + string.Create(CultureInfo.InvariantCulture,
            $"At 32 concurrent TwoPC runs at {ratio:F2} × raw 2PC (goal ≥ 1.0: {(ratio >= 1.0 ? "met" : "NOT met")}), {at32.TwoPC.PerSecond / at32.OnePhase.PerSecond:F2} × two non-atomic one-phase commits (goal ≥ 0.70: {(at32.TwoPC.PerSecond / at32.OnePhase.PerSecond >= 0.70 ? "met" : "NOT met")}), and {at32.TwoPC.PerSecond / at32.SetLocal.PerSecond:F2} × itself with a SET LOCAL round trip per branch.")
            + " Per branch TwoPC sends what raw 2PC sends (BEGIN with the first statement, PREPARE TRANSACTION, COMMIT PREPARED) and reads the branch's transaction id in the PREPARE round trip (pg_current_xact_id_if_assigned(); no row is written); lock waits end at the deadline through the coordinator's timeout reaper, not a SET LOCAL round trip. On top of raw 2PC it forces one group-committed decision record per transaction to the coordinator's WAL.";
        Console.WriteLine(verdict);
        ResultsFile.Write("postgres.md", "PostgreSQL: two databases, one UPDATE each",
            $"dotnet run -c Release --project Tests/TwoPC.Benchmarks -- postgres {seconds.ToString(CultureInfo.InvariantCulture)}",
            $"One private PostgreSQL {server.Version} server on loopback (fsync on, started by Testing/TwoPC.TestServers), two databases of {Rows:N0} rows; each transaction updates one random row in each. TwoPC: Begin, EnlistAsync in both, UPDATE, CommitAsync with TransactionCoordinatorOptions.LastResourceCommit = false (both prepared, decision forced to the durable WAL); TwoPC-LRC: the same with the default, LastResourceCommit = true (the first database is the last resource; finished markers deleted in batches in the background); once more with SET LOCAL lock/statement timeouts on every branch (BoundLockWaitsByDeadline = true). Raw 2PC: the same SQL with PREPARE TRANSACTION / COMMIT PREPARED in parallel and no coordinator. One-phase: two plain COMMITs in parallel (not atomic). After a 4 s warm-up of every variant at 32 concurrent, each cell is measured twice ({seconds} s each, after a 1 s warm-up), in opposite variant orders, and averaged.",
            table.ToString(), verdict, dataDirectory: server.DataDirectory);
        logDirectory.Delete(recursive: true);
        lrcLogDirectory.Delete(recursive: true);
        return 0;
    }

    private static async Task TwoPCTransactionAsync(TransactionCoordinator coordinator, PostgresResourceManager rmA, PostgresResourceManager rmB)
    {
        var id = Random.Shared.Next(1, Rows + 1);
        var tx = coordinator.Begin();
        var ba = await rmA.EnlistAsync(tx);
        var bb = await rmB.EnlistAsync(tx);
        await UpdateAsync(ba.Connection, ba.Transaction, id);
        await UpdateAsync(bb.Connection, bb.Transaction, id);
        var outcome = await tx.CommitAsync();
        if (outcome.Kind != OutcomeKind.Committed)
        {
            throw new InvalidOperationException($"benchmark transaction ended {outcome.Kind}: {outcome.Reason}");
        }
    }

    private static async Task UpdateAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, int id)
    {
        await using var command = new NpgsqlCommand("UPDATE items SET value = value + 1 WHERE id = $1", connection, transaction);
        command.Parameters.AddWithValue(id);
        await command.ExecuteNonQueryAsync();
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection, transaction);
        await command.ExecuteNonQueryAsync();
    }
}
