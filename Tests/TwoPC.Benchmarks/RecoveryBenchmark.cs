using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;
using Microsoft.Extensions.Logging;
using Npgsql;
using TwoPC.Diagnostics;
using TwoPC.Durability;
using TwoPC.Participants.PostgreSql;
using TwoPC.Protocol;
using TwoPC.TestServers;
using TwoPC.Testing;
using TwoPC.Transactions;
using TwoPC.Wal;

namespace TwoPC.Benchmarks;

/// <summary>
/// Recovery after a crash: a child process leaves N transactions in doubt in two PostgreSQL databases (every branch
/// prepared; most with a forced commit decision, the rest with none) and is SIGKILLed; then a fresh coordinator on
/// the same log starts, and the benchmark times it until <c>pg_prepared_xacts</c> is empty in both databases.
/// </summary>
public static partial class RecoveryBenchmark
{
    private static readonly TimeSpan OrphanSafetyInterval = TimeSpan.FromSeconds(2);

    public static async Task<int> RunAsync(string[] args)
    {
        if (args.Contains("--child"))
        {
            return await RunChildAsync(args);
        }

        var runs = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 3;
        var transactions = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 10_000;
        const int UndecidedEvery = 10;
        const int Concurrency = 32;

        // Each prepared branch keeps a slot of max_prepared_transactions (server-wide: both databases count) and its locks
        // (the table and its primary key) in the shared lock table, which has max_locks_per_transaction x (max_connections +
        // max_prepared_transactions) entries: 2 x transactions branches need far fewer than the default 64 per slot gives.
        await using var server = await PostgresServer.StartAsync(new PostgresServerOptions
        {
            MaxPreparedTransactions = (2 * transactions) + 100,
            MaxConnections = 300,
            Settings = { ["max_locks_per_transaction"] = "32" },
        });
        var results = new List<RunResult>();
        for (var run = 1; run <= runs; run++)
        {
            var result = await RunOnceAsync(server, run, transactions, UndecidedEvery, Concurrency);
            Console.WriteLine(result.ToRow());
            results.Add(result);
        }

        var floor = await RawFloorAsync(server, runs + 1, transactions, UndecidedEvery, Concurrency);
        Console.WriteLine($"PostgreSQL alone: {floor.TotalMilliseconds:N0} ms");
        var median = results.OrderBy(r => r.Total).ElementAt(results.Count / 2);
        var goalMet = median.Total <= TimeSpan.FromSeconds(3);
        var table = new StringBuilder();
        table.Append("| run | in doubt (committed / presumed abort) | log open | scan of a alone, before | first scan of each database in StartAsync | StartAsync (open + first pass) | orphan rollbacks (first → last) | phase-2 re-drive done | every branch resolved | coordinator process CPU | load average | coordinator warnings |\n");
        table.Append("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        foreach (var r in results)
        {
            table.Append(r.ToRow()).Append('\n');
        }

        table.Append(CultureInfo.InvariantCulture, $"\nThe floor, PostgreSQL alone (the same setup, then no coordinator: `COMMIT PREPARED` of every one of the {2 * transactions:N0} prepared branches over {RawConnections} connections per database, all at once): **{floor.TotalMilliseconds:N0} ms**.\n");
        table.Append(CultureInfo.InvariantCulture, $"""

            Where the time goes (median run): the log opens in {median.LogOpen.TotalMilliseconds:N0} ms. Re-driving the {median.Counters.Commits:N0} committed branches
            ends at {median.Counters.LastCommit.TotalSeconds:0.0} s, {median.Counters.LastCommit / floor:0.0}× what PostgreSQL alone needed for all {2 * transactions:N0} branches in the floor run (every
            `COMMIT PREPARED` is a WAL flush; the coordinator process used {median.Cpu.TotalSeconds:0.0} s of CPU of the two shared cores). StartAsync lists all
            {median.Committed:N0} decisions as recovering at once and re-drives them with at most {TwoPC.Protocol.TransactionCoordinator.DefaultRedriveParallelism} `COMMIT PREPARED` in flight per database (the rest
            queue; `TransactionCoordinator.Redrive`), so the first pass's scans find free connections ({median.Scans}) and the orphans are
            rolled back from {median.Counters.FirstOrphan.TotalSeconds:0.0} s on. The same scan (`PostgresResourceManager.RecoverAsync`: `pg_prepared_xacts` with 10,000 rows) run
            alone just before the coordinator starts took {string.Join(", ", results.Select(r => r.ScanAlone.TotalMilliseconds.ToString("N0", CultureInfo.InvariantCulture)))} ms in these runs. What is left is PostgreSQL's
            floor (every `COMMIT PREPARED` a WAL flush on a shared 2-core machine): the goal can only be met where that floor is below 3 s.

            """);
        table.Append(CultureInfo.InvariantCulture, $"\nMedian of {runs}: **{median.Total.TotalSeconds:0.00} s** until every branch is resolved (goal ≤ 3 s: {(goalMet ? "met" : "NOT met")}).\n");
        ResultsFile.Write(
            "recovery.md",
            "Recovery of in-doubt transactions after a SIGKILL",
            $"dotnet run -c Release --project Tests/TwoPC.Benchmarks -- recovery {runs} {transactions}",
            $"""
            Per run: a child process (this program, `recovery --child`) runs a real coordinator (file WAL) with two PostgresResourceManagers
            on two databases of one private PostgreSQL server and begins {transactions:N0} transactions ({Concurrency} at a time), each inserting
            one row in both databases. The protocol's step hook (the one the crash tests use) stops every transaction for good: 9 in 10
            right after the commit decision is forced to the log (before phase 2 tells any branch), 1 in 10 after both branches voted yes
            (no decision: presumed abort). The parent checks that {2 * transactions:N0} branches are in `pg_prepared_xacts`, SIGKILLs the child,
            waits until the youngest branch is older than the orphan safety interval ({OrphanSafetyInterval.TotalSeconds:0} s; a real restart
            usually takes longer than that), then starts a fresh coordinator on the same log in its own process (default options except that
            interval) and times `StartAsync` until `pg_prepared_xacts` is empty in both databases (polled every 10 ms); afterwards it checks
            that exactly the rows of the committed transactions are visible. Setting up the in-doubt transactions is not timed.
            Breakdown: log open = `ITransactionLog.OpenAsync` (reads the decisions); `StartAsync` = open + the first recovery pass (scans both
            databases and rolls back the orphans, 16 at a time) while the logged decisions are re-driven in the background ({TwoPC.Protocol.TransactionCoordinator.DefaultRedriveParallelism} calls
            in flight per database, the rest queued); the orphan and
            re-drive times come from the coordinator's `twopc.recovery.orphans_rolled_back` and `twopc.recovery.commits` counters (time of
            the first and last increment, from the start); coordinator process CPU = user + system time of this process over the timed
            window (the PostgreSQL server's is not counted); load average = the 1-minute load of the machine when the run started (other
            work shares its cores). Database connections: Npgsql's default pool (100) per database.
            """,
            table.ToString(),
            goalMet
                ? $"Goal met: {median.Total.TotalSeconds:0.00} s ≤ 3 s for {transactions:N0} in-doubt transactions."
                : $"Goal NOT met: {median.Total.TotalSeconds:0.00} s > 3 s for {transactions:N0} in-doubt transactions; the breakdown says where the time goes.");
        return 0;
    }

    private static async Task<RunResult> RunOnceAsync(PostgresServer server, int run, int transactions, int undecidedEvery, int concurrency)
    {
        var (a, b, logDirectory) = await LeaveInDoubtAsync(server, run, transactions, undecidedEvery, concurrency);
        await using var dataSourceA = a;
        await using var dataSourceB = b;
        var expectedCommitted = Enumerable.Range(0, transactions).Count(i => i % undecidedEvery != 0);
        await Task.Delay(OrphanSafetyInterval + TimeSpan.FromMilliseconds(500));

        // How long one scan of pg_prepared_xacts takes with nothing else running (a throwaway resource manager, read-only).
        TimeSpan scanAlone;
        using (var probe = await PostgresResourceManager.CreateAsync("pg-a", a))
        {
            var scanClock = Stopwatch.StartNew();
            var seen = await probe.RecoverAsync(CancellationToken.None);
            scanAlone = scanClock.Elapsed;
            Console.WriteLine($"run {run}: one scan alone: {seen.Count} in-doubt branches in {scanAlone.TotalMilliseconds:N0} ms");
        }

        // Created before the clock starts, as an application's would be before it starts the coordinator.
        using var rmA = await PostgresResourceManager.CreateAsync("pg-a", a);
        using var rmB = await PostgresResourceManager.CreateAsync("pg-b", b);
        var log = new TimedLog(new FileTransactionLog(new FileTransactionLogOptions { Directory = logDirectory.FullName }));
        var options = new TransactionCoordinatorOptions { NodeId = NodeId, OrphanSafetyInterval = OrphanSafetyInterval, LastResourceCommit = false };
        using var counters = new RecoveryCounters();
        var warnings = new WarningCounter();
        using var loggerFactory = LoggerFactory.Create(builder => builder.SetMinimumLevel(LogLevel.Warning).AddProvider(warnings));
        var clock = new Stopwatch();
        var scannedA = new ScanTimed(rmA, clock);
        var scannedB = new ScanTimed(rmB, clock);
        await using var coordinator = new TransactionCoordinator(options, log, [scannedA, scannedB], loggerFactory);

        var load = File.ReadAllText("/proc/loadavg").Split(' ')[0];
        using var self = Process.GetCurrentProcess();
        var cpuBefore = self.TotalProcessorTime;
        clock.Start();
        counters.Start(clock);
        await coordinator.StartAsync();
        var started = clock.Elapsed;
        TimeSpan? redriven = null;
        while (true)
        {
            if (redriven is null && coordinator.RecoveringTransactions == 0)
            {
                redriven = clock.Elapsed;
            }

            if (await PreparedAsync(a) == 0 && await PreparedAsync(b) == 0)
            {
                break;
            }

            if (clock.Elapsed > TimeSpan.FromMinutes(5))
            {
                throw new TimeoutException($"recovery did not finish within 5 minutes: {await PreparedAsync(a)} + {await PreparedAsync(b)} still prepared");
            }

            await Task.Delay(10);
        }

        var total = clock.Elapsed;
        self.Refresh();
        var cpu = self.TotalProcessorTime - cpuBefore;
        redriven ??= total;
        foreach (var ds in new[] { a, b })
        {
            var (visible, wrong) = await RowsAsync(ds, undecidedEvery);
            if (visible != expectedCommitted || wrong != 0)
            {
                throw new InvalidOperationException($"recovery was not exact: {visible} rows visible (expected {expectedCommitted}), {wrong} of them from presumed-abort transactions");
            }
        }

        logDirectory.Delete(recursive: true);
        return new RunResult(run, expectedCommitted, transactions - expectedCommitted, log.OpenTime, started, counters.Snapshot(), redriven.Value, total, cpu, load, warnings.Summary(), $"a: {scannedA.FirstScan}; b: {scannedB.FirstScan}", scanAlone);
    }

    /// <summary>Runs the child until it left every transaction in doubt, SIGKILLs it and checks what the databases hold.</summary>
    private static async Task<(NpgsqlDataSource A, NpgsqlDataSource B, DirectoryInfo Log)> LeaveInDoubtAsync(PostgresServer server, int run, int transactions, int undecidedEvery, int concurrency)
    {
        var connA = await server.CreateDatabaseAsync($"recovery_{run}_a");
        var connB = await server.CreateDatabaseAsync($"recovery_{run}_b");
        var a = NpgsqlDataSource.Create(connA);
        var b = NpgsqlDataSource.Create(connB);
        foreach (var ds in new[] { a, b })
        {
            await using var create = ds.CreateCommand("CREATE TABLE items (id int PRIMARY KEY, gtrid text NOT NULL)");
            await create.ExecuteNonQueryAsync();
        }

        var logDirectory = Directory.CreateTempSubdirectory("twopc-recovery-bench-");
        var setup = Stopwatch.StartNew();
        using (var child = CrashHostProcess.StartProgram(Path.Combine("Tests", "TwoPC.Benchmarks"),
            ["recovery", "--child", "--log", logDirectory.FullName, "--db-a", connA, "--db-b", connB,
             "--transactions", transactions.ToString(CultureInfo.InvariantCulture), "--undecided-every", undecidedEvery.ToString(CultureInfo.InvariantCulture),
             "--concurrency", concurrency.ToString(CultureInfo.InvariantCulture)]))
        {
            var line = await child.WaitForLineAsync(TimeSpan.FromMinutes(15), "READY", "FAILED");
            if (line is null || !line.StartsWith("READY", StringComparison.Ordinal))
            {
                throw new InvalidOperationException("the setup child did not leave every transaction in doubt\n" + child.Describe());
            }

            child.Kill();
        }

        foreach (var ds in new[] { a, b })
        {
            var prepared = await PreparedAsync(ds);
            var (visible, _) = await RowsAsync(ds, undecidedEvery);
            if (prepared != transactions || visible != 0)
            {
                throw new InvalidOperationException($"after the kill: {prepared} prepared (expected {transactions}), {visible} rows visible (expected 0)");
            }
        }

        Console.WriteLine($"run {run}: {transactions} transactions in doubt in both databases after {setup.Elapsed.TotalSeconds:0.0} s of setup; child killed");
        return (a, b, logDirectory);
    }

    private const int RawConnections = 100;

    /// <summary>
    /// What PostgreSQL alone needs to finish the same prepared branches: the same setup, then every prepared gid is
    /// committed by <see cref="RawConnections"/> connections per database at once, without a coordinator or log.
    /// </summary>
    private static async Task<TimeSpan> RawFloorAsync(PostgresServer server, int run, int transactions, int undecidedEvery, int concurrency)
    {
        var (a, b, _) = await LeaveInDoubtAsync(server, run, transactions, undecidedEvery, concurrency);
        await using (a)
        await using (b)
        {
            var gids = new Dictionary<NpgsqlDataSource, List<string>>();
            foreach (var ds in new[] { a, b })
            {
                gids[ds] = [];
                await using var list = ds.CreateCommand("SELECT gid FROM pg_prepared_xacts WHERE database = current_database()");
                await using var reader = await list.ExecuteReaderAsync();
                while (await reader.ReadAsync())
                {
                    gids[ds].Add(reader.GetString(0));
                }
            }

            var clock = Stopwatch.StartNew();
            await Task.WhenAll(gids.Select(async entry =>
            {
                var next = -1;
                await Task.WhenAll(Enumerable.Range(0, RawConnections).Select(_ => Task.Run(async () =>
                {
                    await using var connection = await entry.Key.OpenConnectionAsync();
                    int i;
                    while ((i = Interlocked.Increment(ref next)) < entry.Value.Count)
                    {
                        await using var commit = new NpgsqlCommand($"COMMIT PREPARED '{entry.Value[i]}'", connection);
                        await commit.ExecuteNonQueryAsync();
                    }
                })));
            }));
            var elapsed = clock.Elapsed;
            if (await PreparedAsync(a) != 0 || await PreparedAsync(b) != 0)
            {
                throw new InvalidOperationException("the raw floor left prepared transactions");
            }

            return elapsed;
        }
    }

    private static async Task<long> PreparedAsync(NpgsqlDataSource dataSource)
    {
        await using var command = dataSource.CreateCommand("SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database()");
        return (long)(await command.ExecuteScalarAsync())!;
    }

    private static async Task<(long Visible, long Wrong)> RowsAsync(NpgsqlDataSource dataSource, int undecidedEvery)
    {
        await using var command = dataSource.CreateCommand($"SELECT count(*), count(*) FILTER (WHERE id % {undecidedEvery} = 0) FROM items");
        await using var reader = await command.ExecuteReaderAsync();
        await reader.ReadAsync();
        return (reader.GetInt64(0), reader.GetInt64(1));
    }

    private sealed record RunResult(int Run, int Committed, int Orphans, TimeSpan LogOpen, TimeSpan Started, CounterSnapshot Counters, TimeSpan Redriven, TimeSpan Total, TimeSpan Cpu, string Load, string Warnings, string Scans, TimeSpan ScanAlone)
    {
        public string ToRow() => string.Create(CultureInfo.InvariantCulture,
            $"| {Run} | {Committed:N0} / {Orphans:N0} | {Ms(LogOpen)} | {Ms(ScanAlone)} | {Scans} | {Ms(Started)} | {Counters.Orphans:N0} branches, {Ms(Counters.FirstOrphan)} → {Ms(Counters.LastOrphan)} | {Counters.Commits:N0} branches, last at {Ms(Counters.LastCommit)} (none left when first polled after StartAsync: {Ms(Redriven)}) | **{Ms(Total)}** | {Ms(Cpu)} | {Load} | {Warnings} |");

        private static string Ms(TimeSpan t) => string.Create(CultureInfo.InvariantCulture, $"{t.TotalMilliseconds:N0} ms");
    }
}
