using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace TwoPC.Diagnostics;

/// <summary>Names of TwoPC's telemetry sources, for OpenTelemetry and <c>dotnet-counters</c> configuration.</summary>
public static class TwoPCTelemetry
{
    /// <summary>The <see cref="Meter"/> name of every TwoPC metric.</summary>
    public const string MeterName = "TwoPC";

    /// <summary>The <see cref="ActivitySource"/> name: a span per global transaction and per branch call.</summary>
    public const string ActivitySourceName = "TwoPC";

    internal static readonly ActivitySource ActivitySource = new(ActivitySourceName, typeof(TwoPCTelemetry).Assembly.GetName().Version?.ToString());

    internal static Meter CreateMeter(IMeterFactory? meterFactory) =>
        meterFactory?.Create(new MeterOptions(MeterName)) ?? new Meter(MeterName);

    /// <summary>
    /// Bucket boundaries (seconds) of the transaction and phase durations: 1 ms to 30 s, dense between 1 and 100 ms
    /// where a healthy commit lands. Without this advice OpenTelemetry's default boundaries (0, 5, 10, … 10000, meant
    /// for milliseconds) would put every commit in the first bucket.
    /// </summary>
    internal static readonly InstrumentAdvice<double> TransactionDurationAdvice = new()
    {
        HistogramBucketBoundaries = [0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 10, 30],
    };

    /// <summary>Bucket boundaries (seconds) of a forced log write (one fsync): 100 µs to 1 s.</summary>
    internal static readonly InstrumentAdvice<double> LogForceDurationAdvice = new()
    {
        HistogramBucketBoundaries = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    };

    /// <summary>Bucket boundaries of a group-commit batch size (records): powers of two up to 1024.</summary>
    internal static readonly InstrumentAdvice<int> BatchRecordsAdvice = new()
    {
        HistogramBucketBoundaries = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
    };
}

/// <summary>Instruments of the write-ahead log.</summary>
internal sealed class WalMetrics
{
    public WalMetrics(Meter meter)
    {
        BatchRecords = meter.CreateHistogram("twopc.wal.batch.records", "{record}", "Records written by one group-commit flush.", tags: null, TwoPCTelemetry.BatchRecordsAdvice);
        FlushDuration = meter.CreateHistogram("twopc.wal.flush.duration", "s", "Time to write and fsync one group-commit batch.", tags: null, TwoPCTelemetry.LogForceDurationAdvice);
        BytesWritten = meter.CreateCounter<long>("twopc.wal.bytes", "By", "Bytes appended to the write-ahead log.");
        SegmentsDeleted = meter.CreateCounter<long>("twopc.wal.segments.deleted", "{segment}", "Log segments removed by checkpointing.");
    }

    public Histogram<int> BatchRecords { get; }

    public Histogram<double> FlushDuration { get; }

    public Counter<long> BytesWritten { get; }

    public Counter<long> SegmentsDeleted { get; }
}
