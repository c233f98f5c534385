using System.Diagnostics.Metrics;

namespace TwoPC.Diagnostics;

/// <summary>Instruments of the last-resource commit (meter <see cref="TwoPCTelemetry.MeterName"/>).</summary>
internal sealed class LastResourceMetrics(Meter meter)
{
    /// <summary>Transactions whose decision was the last resource's commit; tag <c>outcome</c>: committed, refused, unknown (the answer was lost and the fence decided).</summary>
    public Counter<long> Commits { get; } = meter.CreateCounter<long>("twopc.last_resource.commits", "{transaction}", "Last-resource commits (the decision is the last resource's COMMIT with a marker); tag outcome: committed, refused, fenced_committed, fenced_aborted.");

    /// <summary>Fences by result; tag <c>result</c>: committed, aborted, failed.</summary>
    public Counter<long> Fences { get; } = meter.CreateCounter<long>("twopc.last_resource.fences", "{fence}", "Fences of last-resource transactions (a lost COMMIT answer, or a recovery orphan); tag result: committed, aborted, failed.");

    /// <summary>Committed markers whose phase 2 recovery re-drove.</summary>
    public Counter<long> MarkersRedriven { get; } = meter.CreateCounter<long>("twopc.last_resource.markers_redriven", "{marker}", "Committed markers recovery found and re-drove phase 2 for.");

    /// <summary>Markers deleted once every branch acknowledged.</summary>
    public Counter<long> MarkersDeleted { get; } = meter.CreateCounter<long>("twopc.last_resource.markers_deleted", "{marker}", "Commit markers deleted (in batches) after every branch acknowledged.");

    /// <summary>How long the last resource's COMMIT with its marker took.</summary>
    public Histogram<double> CommitDuration { get; } = meter.CreateHistogram("twopc.last_resource.commit.duration", "s", "The last resource's INSERT marker + COMMIT (the decision).", tags: null, TwoPCTelemetry.TransactionDurationAdvice);
}
