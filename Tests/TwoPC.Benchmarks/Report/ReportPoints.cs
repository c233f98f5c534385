namespace TwoPC.Benchmarks.Report;

/// <summary>
/// One measured cell of a benchmark as data, for the charts of the report: a series (variant) at a
/// concurrency, its throughput and its latency percentiles.
/// </summary>
/// <param name="Benchmark">The benchmark's command, e.g. <c>postgres</c>.</param>
/// <param name="Series">The variant, as the benchmark's table names it.</param>
/// <param name="Concurrency">Concurrent callers (committers for the WAL).</param>
/// <param name="PerSecond">The rate the benchmark judges the variant by (transactions, decisions or delivered messages per second).</param>
/// <param name="P50Ms">Median latency in milliseconds (for an outbox: end to end, to delivery).</param>
/// <param name="P99Ms">99th-percentile latency in milliseconds.</param>
public sealed record BenchmarkPoint(string Benchmark, string Series, int Concurrency, double PerSecond, double P50Ms, double P99Ms);

/// <summary>
/// Where a benchmark run by <c>report</c> hands back its measurements (besides writing its own
/// <c>results/*.md</c>). Each benchmark's <c>RunAsync</c> takes one as an optional argument; run on its
/// own, it gets none and records nothing.
/// </summary>
public sealed class ReportPoints
{
    private readonly List<BenchmarkPoint> _points = [];

    /// <summary>Everything recorded so far, in the order recorded.</summary>
    public IReadOnlyList<BenchmarkPoint> All => _points;

    /// <summary>Records one cell.</summary>
    public void Add(string benchmark, string series, int concurrency, double perSecond, double p50Ms, double p99Ms) =>
        _points.Add(new BenchmarkPoint(benchmark, series, concurrency, perSecond, p50Ms, p99Ms));

    /// <summary>Records one cell measured by <see cref="Load"/>.</summary>
    public void Add(string benchmark, string series, int concurrency, Measurement measurement)
    {
        ArgumentNullException.ThrowIfNull(measurement);
        Add(benchmark, series, concurrency, measurement.PerSecond, measurement.P50, measurement.P99);
    }
}
