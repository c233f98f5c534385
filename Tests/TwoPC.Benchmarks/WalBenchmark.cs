using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;
using Microsoft.Win32.SafeHandles;
using TwoPC.Benchmarks.Report;
using TwoPC.Diagnostics;
using TwoPC.Durability;
using TwoPC.Transactions;
using TwoPC.Wal;

namespace TwoPC.Benchmarks;

/// <summary>
/// Durable commit decisions per second through <see cref="FileTransactionLog"/> (group commit) at several
/// numbers of concurrent committers, against a baseline in the same run: the same record bytes written
/// with one write and one fsync per decision under a lock, no grouping.
/// </summary>
public static class WalBenchmark
{
    private const double TargetRatioAt64 = 20;

    // Realistic decision: two branches, ~40-byte XIDs, small recovery data.
    private static readonly NodeId Node = NodeId.Parse("coordinator-bench-01");
    private static readonly byte[] RecoveryData = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10];

    /// <summary>Runs the benchmark; <paramref name="args"/> are the options after <c>wal</c>; <paramref name="report"/> receives every cell as data.</summary>
    public static async Task<int> RunAsync(string[] args, ReportPoints? report = null)
    {
        ArgumentNullException.ThrowIfNull(args);
        var duration = TimeSpan.FromSeconds(3);
        var warmup = TimeSpan.FromSeconds(1);
        int[] concurrencies = [1, 16, 64, 256];
        var dataRoot = Path.GetTempPath();
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
                case "--warmup" when value is not null:
                    warmup = TimeSpan.FromSeconds(double.Parse(value, CultureInfo.InvariantCulture));
                    i++;
                    break;
                case "--concurrency" when value is not null:
                    concurrencies = value.Split(',').Select(v => int.Parse(v, CultureInfo.InvariantCulture)).ToArray();
                    i++;
                    break;
                case "--dir" when value is not null:
                    dataRoot = value;
                    i++;
                    break;
                case "--results" when value is not null:
                    resultsDirectory = value;
                    i++;
                    break;
                default:
                    Console.Error.WriteLine($"Unknown or incomplete option '{args[i]}'. Options: --duration <s> --warmup <s> --concurrency <n,n,...> --dir <path> --results <path>");
                    return 2;
            }
        }

#if DEBUG
        Console.Error.WriteLine("Warning: Debug build; run with -c Release for representative numbers.");
#endif
        using var batches = new BatchListener();
        var rows = new List<(int Committers, Cell Group, double RecordsPerWrite, double FlushMs, Cell Baseline)>();
        foreach (var committers in concurrencies)
        {
            batches.Reset();
            var group = await MeasureGroupCommitAsync(committers, warmup, duration, dataRoot);
            var recordsPerWrite = batches.RecordsPerBatch;
            var flushMs = batches.MeanFlushMs;
            var baseline = await MeasureBaselineAsync(committers, warmup, duration, dataRoot);
            rows.Add((committers, group, recordsPerWrite, flushMs, baseline));
            report?.Add("wal", "group commit", committers, group.PerSecond, group.P50Ms, group.P99Ms);
            report?.Add("wal", "one fsync per record", committers, baseline.PerSecond, baseline.P50Ms, baseline.P99Ms);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{committers,4} committers: group commit {group.PerSecond,10:N0}/s (p50 {group.P50Ms:F3} ms, p99 {group.P99Ms:F3} ms, {recordsPerWrite:F1} records/write, {flushMs:F3} ms/flush); baseline {baseline.PerSecond,8:N0}/s (p50 {baseline.P50Ms:F3} ms, p99 {baseline.P99Ms:F3} ms); ratio {group.PerSecond / baseline.PerSecond:F1}x"));
        }

        var table = new StringBuilder();
        table.Append("| committers | group commit decisions/s | p50 ms | p99 ms | records per write | ms per flush | baseline decisions/s | p50 ms | p99 ms | group ÷ baseline |\n");
        table.Append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        foreach (var (committers, group, recordsPerWrite, flushMs, baseline) in rows)
        {
            table.Append(string.Create(CultureInfo.InvariantCulture,
                $"| {committers} | {group.PerSecond:N0} | {group.P50Ms:F3} | {group.P99Ms:F3} | {recordsPerWrite:F1} | {flushMs:F3} | {baseline.PerSecond:N0} | {baseline.P50Ms:F3} | {baseline.P99Ms:F3} | {group.PerSecond / baseline.PerSecond:F1}× |\n"));
        }

        var verdict = rows.Where(r => r.Committers == 64).Select(r =>
        {
            var ratio = r.Group.PerSecond / r.Baseline.PerSecond;
            return string.Create(CultureInfo.InvariantCulture,
                $"At 64 committers group commit is {ratio:F1}× the one-fsync-per-record baseline (target ≥ {TargetRatioAt64}×: {(ratio >= TargetRatioAt64 ? "met" : "NOT met")}), {r.Group.PerSecond:N0} durable decisions/s.");
        }).FirstOrDefault() ?? "64 committers were not measured, so the target ratio was not checked.";

        Console.WriteLine();
        Console.Write(table);
        Console.WriteLine(verdict);

        var command = "dotnet run -c Release --project Tests/TwoPC.Benchmarks -- wal" + (args.Length > 0 ? " " + string.Join(' ', args) : string.Empty);
        var description = string.Create(CultureInfo.InvariantCulture,
            $"""
            Durable commit decisions per second. Each committer loops: `await LogCommitDecisionAsync(decision)` (2 branches, ~40-byte XIDs, 16 bytes of recovery data each; ~{SampleFrameLength()} bytes framed), then `LogEnd`. Closed loop, {warmup.TotalSeconds:0.#} s warm-up then {duration.TotalSeconds:0.#} s measured per cell; latency is per durable decision.

            - **Group commit**: `FileTransactionLog` with default options (64 MiB segments): one flusher, one positional write and one fsync per batch. "Records per write" counts decisions and ENDs per flush; "ms per flush" is the mean write + fsync time of one batch (the `twopc.wal.flush.duration` metric).
            - **Baseline**: the same frame bytes written to a plain file with one `RandomAccess.Write` + one `RandomAccess.FlushToDisk` per decision under an async lock, no grouping (ENDs are written under the lock without fsync).
            """);
        ResultsFile.Write("wal.md", "Write-ahead log: group commit vs. one fsync per record", command, description, table.ToString(), verdict, resultsDirectory, dataRoot);
        return 0;
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

    private static int SampleFrameLength()
    {
        using var buffer = new WalFrameBuffer();
        var decision = NewDecision(1, (1UL << 32) | 12345, DateTimeOffset.UnixEpoch);
        buffer.WriteFrame((byte)TransactionRecordType.CommitDecision, decision, TransactionRecordCodec.MaxCommitDecisionLength(decision), TransactionRecordCodec.CommitDecisionEncoder);
        return buffer.Length;
    }

    private static async Task<Cell> MeasureGroupCommitAsync(int committers, TimeSpan warmup, TimeSpan duration, string dataRoot)
    {
        var directory = Path.Combine(dataRoot, "twopc-wal-bench-" + Guid.NewGuid().ToString("N"));
        try
        {
            await using var log = new FileTransactionLog(new FileTransactionLogOptions { Directory = directory });
            var epoch = (await log.OpenAsync(CancellationToken.None)).Epoch;
            var clock = TimeProvider.System;
            return await MeasureAsync(committers, warmup, duration, async (committer, sequence) =>
            {
                var decision = NewDecision(epoch, ((ulong)committer << 32) | sequence, clock.GetUtcNow());
                await log.LogCommitDecisionAsync(decision);
                log.LogEnd(decision.TransactionId);
            });
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private static async Task<Cell> MeasureBaselineAsync(int committers, TimeSpan warmup, TimeSpan duration, string dataRoot)
    {
        var path = Path.Combine(dataRoot, "twopc-wal-baseline-" + Guid.NewGuid().ToString("N") + ".log");
        try
        {
            using var file = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite);
            using var gate = new SemaphoreSlim(1, 1);
            using var buffer = new WalFrameBuffer();
            long offset = 0;
            var clock = TimeProvider.System;
            return await MeasureAsync(committers, warmup, duration, async (committer, sequence) =>
            {
                var decision = NewDecision(1, ((ulong)committer << 32) | sequence, clock.GetUtcNow());
                await gate.WaitAsync();
                try
                {
                    buffer.Reset();
                    buffer.WriteFrame((byte)TransactionRecordType.CommitDecision, decision, TransactionRecordCodec.MaxCommitDecisionLength(decision), TransactionRecordCodec.CommitDecisionEncoder);
                    offset = WriteAt(file, buffer, offset);
                    RandomAccess.FlushToDisk(file);
                    buffer.Reset();
                    buffer.WriteFrame((byte)TransactionRecordType.End, decision.TransactionId, TransactionRecordCodec.MaxEndLength, TransactionRecordCodec.EndEncoder);
                    offset = WriteAt(file, buffer, offset);
                }
                finally
                {
                    gate.Release();
                }
            });
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static long WriteAt(SafeFileHandle file, WalFrameBuffer buffer, long offset)
    {
        RandomAccess.Write(file, buffer.WrittenSpan, offset);
        return offset + buffer.Length;
    }

    /// <summary>Runs a closed loop: each committer runs <paramref name="commit"/> back to back; only the measured phase counts.</summary>
    internal static async Task<Cell> MeasureAsync(int committers, TimeSpan warmup, TimeSpan duration, Func<int, ulong, Task> commit)
    {
        var phase = new Phase();
        var latencies = new List<long>[committers];
        var workers = new Task[committers];
        for (var c = 0; c < committers; c++)
        {
            var committer = c;
            var mine = latencies[c] = new List<long>(64 * 1024);
            workers[c] = Task.Run(async () =>
            {
                ulong sequence = 0;
                while (phase.Value != Phase.Stopped)
                {
                    var measuring = phase.Value == Phase.Measuring;
                    var start = Stopwatch.GetTimestamp();
                    await commit(committer, ++sequence);
                    if (measuring && phase.Value == Phase.Measuring)
                    {
                        mine.Add(Stopwatch.GetTimestamp() - start);
                    }
                }
            });
        }

        await Task.Delay(warmup);
        phase.Value = Phase.Measuring;
        var stopwatch = Stopwatch.StartNew();
        await Task.Delay(duration);
        phase.Value = Phase.Stopped;
        var elapsed = stopwatch.Elapsed;
        await Task.WhenAll(workers);

        var all = latencies.SelectMany(l => l).ToArray();
        Array.Sort(all);
        return new Cell(all.Length / elapsed.TotalSeconds, PercentileMs(all, 0.50), PercentileMs(all, 0.99));
    }

    private static double PercentileMs(long[] sortedTicks, double percentile) =>
        sortedTicks.Length == 0 ? double.NaN : sortedTicks[Math.Min(sortedTicks.Length - 1, (int)(percentile * sortedTicks.Length))] * 1000.0 / Stopwatch.Frequency;

    internal sealed record Cell(double PerSecond, double P50Ms, double P99Ms);

    private sealed class Phase
    {
        public const int WarmingUp = 0;
        public const int Measuring = 1;
        public const int Stopped = 2;

        private volatile int _value = WarmingUp;

        public int Value
        {
            get => _value;
            set => _value = value;
        }
    }

    /// <summary>Averages the <c>twopc.wal.batch.records</c> histogram: records per group-commit write.</summary>
    private sealed class BatchListener : IDisposable
    {
        private readonly MeterListener _listener = new();
        private long _records;
        private long _batches;
        private double _flushSeconds;

        public BatchListener()
        {
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == TwoPCTelemetry.MeterName && instrument.Name is "twopc.wal.batch.records" or "twopc.wal.flush.duration")
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            _listener.SetMeasurementEventCallback<int>((_, records, _, _) =>
            {
                Interlocked.Add(ref _records, records);
                Interlocked.Increment(ref _batches);
            });
            _listener.SetMeasurementEventCallback<double>((_, seconds, _, _) =>
            {
                lock (_listener)
                {
                    _flushSeconds += seconds;
                }
            });
            _listener.Start();
        }

        public double RecordsPerBatch => Interlocked.Read(ref _batches) is var batches and > 0 ? (double)Interlocked.Read(ref _records) / batches : 0;

        public double MeanFlushMs
        {
            get
            {
                lock (_listener)
                {
                    return Interlocked.Read(ref _batches) is var batches and > 0 ? _flushSeconds * 1000 / batches : 0;
                }
            }
        }

        public void Reset()
        {
            lock (_listener)
            {
                _flushSeconds = 0;
            }

            Interlocked.Exchange(ref _records, 0);
            Interlocked.Exchange(ref _batches, 0);
        }

        public void Dispose() => _listener.Dispose();
    }
}
