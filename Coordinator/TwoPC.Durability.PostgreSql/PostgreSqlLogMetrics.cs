using System.Diagnostics.Metrics;
using TwoPC.Diagnostics;

namespace TwoPC.Durability.PostgreSql;

/// <summary>Instruments of the shared PostgreSQL transaction log (meter <see cref="TwoPCTelemetry.MeterName"/>).</summary>
internal sealed class PostgreSqlLogMetrics
{
    public PostgreSqlLogMetrics(Meter meter)
    {
        Batches = meter.CreateCounter<long>("twopc.log.batches", "{batch}", "Group-commit batches written to the shared log (one round trip and one server commit each).");
        BatchRecords = meter.CreateHistogram("twopc.log.batch.records", "{record}", "Decisions and heuristics written by one group-commit batch.", tags: null, TwoPCTelemetry.BatchRecordsAdvice);
        FlushDuration = meter.CreateHistogram("twopc.log.flush.duration", "s", "Time to write and commit one group-commit batch, retries included.", tags: null, TwoPCTelemetry.LogForceDurationAdvice);
        LeaseRenewals = meter.CreateCounter<long>("twopc.log.lease.renewals", "{renewal}", "Lease renewals of this node.");
        Takeovers = meter.CreateCounter<long>("twopc.log.takeovers", "{takeover}", "Expired nodes this node took over.");
        FencedWrites = meter.CreateCounter<long>("twopc.log.fenced_writes", "{write}", "Writes and renewals the log refused because another node took over this node's lease.");
    }

    public Counter<long> Batches { get; }

    public Histogram<int> BatchRecords { get; }

    public Histogram<double> FlushDuration { get; }

    public Counter<long> LeaseRenewals { get; }

    public Counter<long> Takeovers { get; }

    public Counter<long> FencedWrites { get; }
}
