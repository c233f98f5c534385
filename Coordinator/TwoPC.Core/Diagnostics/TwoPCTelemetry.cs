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
}

/// <summary>Instruments of the write-ahead log.</summary>
internal sealed class WalMetrics
{
    public WalMetrics(Meter meter)
    {
        BatchRecords = meter.CreateHistogram<int>("twopc.wal.batch.records", "{record}", "Records written by one group-commit flush.");
        FlushDuration = meter.CreateHistogram<double>("twopc.wal.flush.duration", "s", "Time to write and fsync one group-commit batch.");
        BytesWritten = meter.CreateCounter<long>("twopc.wal.bytes", "By", "Bytes appended to the write-ahead log.");
        SegmentsDeleted = meter.CreateCounter<long>("twopc.wal.segments.deleted", "{segment}", "Log segments removed by checkpointing.");
    }

    public Histogram<int> BatchRecords { get; }

    public Histogram<double> FlushDuration { get; }

    public Counter<long> BytesWritten { get; }

    public Counter<long> SegmentsDeleted { get; }
}
