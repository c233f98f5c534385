using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;
using TwoPC.Benchmarks.Report;
using TwoPC.Diagnostics;
using TwoPC.Durability;
using TwoPC.Durability.PostgreSql;
using TwoPC.TestServers;
using TwoPC.Transactions;
using TwoPC.Wal;

namespace TwoPC.Benchmarks;

/// <summary>
/// Durable commit decisions per second of the shared <see cref="PostgreSqlTransactionLog"/> (HA mode) against the
/// embedded <see cref="FileTransactionLog"/>, at 1, 16 and 64 concurrent committers, in one run on this machine.
/// </summary>
public static class LogBenchmark
{
    private const double TargetAt64 = 25_000;

    private static readonly NodeId Node = NodeId.Parse("coordinator-bench-01");
    private static readonly byte[] RecoveryData = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10];

    /// <summary>Runs the benchmark; <paramref name="args"/> are the options after <c>log</c>.</summary>
    public static async Task<int> RunAsync(string[] args, ReportPoints? report = null)
    {
        ArgumentNullException.ThrowIfNull(args);
        var duration = TimeSpan.FromSeconds(3);
        var warmup = TimeSpan.FromSeconds(1);
        int[] concurrencies = [1, 16, 64];
        string? resultsDirectory = null;
        for (var i = 0; i < args.Length; i++)
        {
            var value = i + 1 < args.Length ? args[i + 1] : null;
            switch (args[i])
            {
                case "--duration" when value is not null:
                    duration = TimeSpan.FromSeconds(double.Parse(value, CultureInfo.InvariantCulture));
                    i++;
                    break;
                case "--concurrency" when value is not null:
                    concurrencies = value.Split(',').Select(v => int.Parse(v, CultureInfo.InvariantCulture)).ToArray();
                    i++;
                    break;
                case "--results" when value is not null:
                    resultsDirectory = value;
                    i++;
                    break;
                default:
                    Console.Error.WriteLine($"Unknown or incomplete option '{args[i]}'. Options: --duration <s> --concurrency <n,n,...> --results <path>");
                    return 2;
            }
        }

#if DEBUG
        Console.Error.WriteLine("Warning: Debug build; run with -c Release for representative numbers.");
#endif
        var loadBefore = LoadAverage();
        // fsync on (the TestServers default) and synchronous_commit on: every batch is durable on the server's disk.
        await using var server = await PostgresServer.StartAsync(new PostgresServerOptions { MaxConnections = 100 });
        using var batches = new BatchListener();
        var rows = new List<(int Committers, WalBenchmark.Cell Postgres, double RecordsPerBatch, double FlushMs, WalBenchmark.Cell File)>();
        foreach (var committers in concurrencies)
        {
            var database = await server.CreateDatabaseAsync();
            batches.Reset();
            WalBenchmark.Cell postgres;
            await using (var log = new PostgreSqlTransactionLog(new PostgreSqlTransactionLogOptions { ConnectionString = database }))
            {
                var epoch = (await log.OpenAsync(Node, CancellationToken.None)).Epoch;
                postgres = await MeasureAsync(committers, warmup, duration, log, epoch);
            }

            var recordsPerBatch = batches.RecordsPerBatch;
            var flushMs = batches.MeanFlushMs;
            var directory = Path.Combine(Path.GetTempPath(), "twopc-log-bench-" + Guid.NewGuid().ToString("N"));
            WalBenchmark.Cell file;
            try
            {
                await using var log = new FileTransactionLog(new FileTransactionLogOptions { Directory = directory });
                var epoch = (await log.OpenAsync(Node, CancellationToken.None)).Epoch;
                file = await MeasureAsync(committers, warmup, duration, log, epoch);
            }
            finally
            {
                Directory.Delete(directory, recursive: true);
            }

            rows.Add((committers, postgres, recordsPerBatch, flushMs, file));
            report?.Add("log", "PostgreSQL log", committers, postgres.PerSecond, postgres.P50Ms, postgres.P99Ms);
            report?.Add("log", "file log", committers, file.PerSecond, file.P50Ms, file.P99Ms);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{committers,4} committers: PostgreSQL {postgres.PerSecond,10:N0}/s (p50 {postgres.P50Ms:F3} ms, p99 {postgres.P99Ms:F3} ms, {recordsPerBatch:F1} records/batch, {flushMs:F3} ms/batch); file {file.PerSecond,10:N0}/s; ratio {postgres.PerSecond / file.PerSecond:F2}x"));
        }

        var table = new StringBuilder();
        table.Append("| committers | PostgreSQL log decisions/s | p50 ms | p99 ms | records per batch | ms per batch | file log decisions/s | p50 ms | p99 ms | PostgreSQL ÷ file |\n");
        table.Append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        foreach (var (committers, postgres, recordsPerBatch, flushMs, file) in rows)
        {
            table.Append(string.Create(CultureInfo.InvariantCulture,
                $"| {committers} | {postgres.PerSecond:N0} | {postgres.P50Ms:F3} | {postgres.P99Ms:F3} | {recordsPerBatch:F1} | {flushMs:F3} | {file.PerSecond:N0} | {file.P50Ms:F3} | {file.P99Ms:F3} | {postgres.PerSecond / file.PerSecond:F2}× |\n"));
        }

        var verdict = rows.Where(r => r.Committers == 64).Select(r => string.Create(CultureInfo.InvariantCulture,
            $"At 64 committers the PostgreSQL log makes {r.Postgres.PerSecond:N0} durable decisions/s (goal ≥ {TargetAt64:N0}: {(r.Postgres.PerSecond >= TargetAt64 ? "met" : "NOT met")}), {r.Postgres.PerSecond / r.File.PerSecond:F2}× the file log.")).FirstOrDefault()
            ?? "64 committers were not measured, so the goal was not checked.";
        verdict += $" 1-minute load average {loadBefore} before the run and {LoadAverage()} after it, on {Environment.ProcessorCount} cores: a load well above the core count means other work shared the CPU and the disk, and every number above is low by as much.";
        Console.WriteLine();
        Console.Write(table);
        Console.WriteLine(verdict);

        var command = "dotnet run -c Release --project Tests/TwoPC.Benchmarks -- log" + (args.Length > 0 ? " " + string.Join(' ', args) : string.Empty);
        var description = string.Create(CultureInfo.InvariantCulture,
            $"""
            Durable commit decisions per second. Each committer loops: `await LogCommitDecisionAsync(decision)` (2 branches, ~40-byte XIDs, 16 bytes of recovery data each), then `LogEnd`. Closed loop, {warmup.TotalSeconds:0.#} s warm-up then {duration.TotalSeconds:0.#} s measured per cell; latency is per durable decision; one run.

            - **PostgreSQL log**: `PostgreSqlTransactionLog` (HA mode, default options: 10 s lease renewed every 3 s) on one private PostgreSQL server (`{server.Version}`) on loopback, started by Testing/TwoPC.TestServers with fsync on and synchronous_commit on, a fresh database per cell. Group commit: one fenced multi-row INSERT (unnest arrays, deleting the ENDed rows in the same statement) and one server commit per batch, two batches in flight at most. "Records per batch" and "ms per batch" come from the `twopc.log.batch.records` and `twopc.log.flush.duration` metrics. No replica: with synchronous replication each batch also waits for the standby.
            - **File log**: `FileTransactionLog` (the embedded default), one write and one fsync per batch, in the system temp directory.
            """);
        ResultsFile.Write("log.md", "Transaction log: PostgreSQL (HA) vs. file", command, description, table.ToString(), verdict, resultsDirectory, server.DataDirectory);
        return 0;
    }

    private static string LoadAverage()
    {
        try
        {
            return File.ReadAllText("/proc/loadavg").Split(' ')[0];
        }
        catch (IOException)
        {
            return "unknown";
        }
    }

    private static CommitDecision NewDecision(ulong epoch, ulong sequence, DateTimeOffset now)
    {
        var id = new GlobalTransactionId(Node, epoch, sequence);
        return new CommitDecision(id, now,
        [
            new LoggedBranch("orders-db", Xid.ForBranch(id, 1), RecoveryData),
            new LoggedBranch("payments-mq", Xid.ForBranch(id, 2), RecoveryData),
        ]);
    }

    /// <summary>WalBenchmark's closed loop: each committer logs a decision and its END back to back.</summary>
    private static Task<WalBenchmark.Cell> MeasureAsync(int committers, TimeSpan warmup, TimeSpan duration, ITransactionLog log, ulong epoch)
    {
        var clock = TimeProvider.System;
        return WalBenchmark.MeasureAsync(committers, warmup, duration, async (committer, sequence) =>
        {
            var decision = NewDecision(epoch, ((ulong)committer << 32) | sequence, clock.GetUtcNow());
            await log.LogCommitDecisionAsync(decision);
            log.LogEnd(decision.TransactionId);
        });
    }

    /// <summary>Averages the <c>twopc.log.batch.records</c> and <c>twopc.log.flush.duration</c> histograms.</summary>
    private sealed class BatchListener : IDisposable
    {
        private readonly MeterListener _listener = new();
        private readonly Lock _sync = new();
        private long _records;
        private long _batches;
        private double _flushSeconds;

        public BatchListener()
        {
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == TwoPCTelemetry.MeterName && instrument.Name is "twopc.log.batch.records" or "twopc.log.flush.duration")
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            _listener.SetMeasurementEventCallback<int>((_, records, _, _) =>
            {
                lock (_sync)
                {
                    _records += records;
                    _batches++;
                }
            });
            _listener.SetMeasurementEventCallback<double>((_, seconds, _, _) =>
            {
                lock (_sync)
                {
                    _flushSeconds += seconds;
                }
            });
            _listener.Start();
        }

        public double RecordsPerBatch
        {
            get
            {
                lock (_sync)
                {
                    return _batches > 0 ? (double)_records / _batches : 0;
                }
            }
        }

        public double MeanFlushMs
        {
            get
            {
                lock (_sync)
                {
                    return _batches > 0 ? _flushSeconds * 1000 / _batches : 0;
                }
            }
        }

        public void Reset()
        {
            lock (_sync)
            {
                _records = 0;
                _batches = 0;
                _flushSeconds = 0;
            }
        }

        public void Dispose() => _listener.Dispose();
    }
}
