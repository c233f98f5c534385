using System.Diagnostics;
using Microsoft.Extensions.Time.Testing;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;
using TwoPC.Protocol;
using TwoPC.Testing;

namespace TwoPC.OpenTelemetry.Tests;

/// <summary>Issue 15 item 10: AddTwoPCInstrumentation collects TwoPC's spans and metrics; duration histograms get bucket advice.</summary>
// One at a time: a provider collects every TwoPC source and meter in the process, also another test's.
[Collection("telemetry")]
public sealed class AddTwoPCInstrumentationTests
{
    [Fact]
    public async Task A_commit_is_collected_as_a_span_and_its_5_ms_duration_lands_in_the_5_ms_bucket()
    {
        var spans = new List<Activity>();
        var metrics = new List<MetricSnapshot>();
        using var tracing = Sdk.CreateTracerProviderBuilder().AddTwoPCInstrumentation().AddInMemoryExporter(spans).Build();
        using var metering = Sdk.CreateMeterProviderBuilder().AddTwoPCInstrumentation().AddInMemoryExporter(metrics).Build();

        // Time is fake: phase 2 of the commit takes exactly 5 ms.
        var time = new FakeTimeProvider();
        var orders = new ScriptedResourceManager("orders") { BeforeCommit = (_, _) => { time.Advance(TimeSpan.FromMilliseconds(5)); return Task.CompletedTask; } };
        var stock = new ScriptedResourceManager("stock");
        var options = new TransactionCoordinatorOptions { NodeId = "otel", RecoveryInterval = TimeSpan.FromHours(1) };
        await using var coordinator = new TransactionCoordinator(options, new InMemoryTransactionLog(), [orders, stock], timeProvider: time);
        await coordinator.StartAsync();
        await using var tx = coordinator.Begin();
        tx.Enlist(orders.CreateBranch);
        tx.Enlist(stock.CreateBranch);
        await tx.CommitAsync();

        tracing.ForceFlush();
        metering.ForceFlush();

        var commit = Assert.Single(spans, s => s.OperationName == "twopc.commit" && Equals(s.GetTagItem("twopc.transaction_id"), tx.Id.ToString()));
        Assert.Contains(spans, s => s.OperationName == "twopc.branch.prepare" && s.ParentSpanId == commit.SpanId);

        var duration = metrics.Last(m => m.Name == "twopc.transaction.duration");
        Assert.Equal("s", duration.Unit);
        var point = Assert.Single(duration.MetricPoints);
        var buckets = new List<(double Bound, long Count)>();
        foreach (var bucket in point.GetHistogramBuckets())
        {
            buckets.Add((bucket.ExplicitBound, bucket.BucketCount));
        }

        // With OpenTelemetry's default boundaries (0, 5, 10, …, meant for ms) 0.005 s would be counted in (0, 5].
        Assert.Equal(0.001, buckets[0].Bound);
        Assert.Equal(1, Assert.Single(buckets, b => b.Count > 0 && b.Bound == 0.005).Count);
        Assert.Contains(metrics, m => m.Name == "twopc.transactions.committed");
    }

    [Fact]
    public async Task Every_duration_histogram_advises_buckets_in_seconds()
    {
        var advised = new Dictionary<string, IReadOnlyList<double>>();
        using var listener = new System.Diagnostics.Metrics.MeterListener
        {
            InstrumentPublished = (instrument, _) =>
            {
                if (instrument.Meter.Name == TwoPC.Diagnostics.TwoPCTelemetry.MeterName && instrument is System.Diagnostics.Metrics.Histogram<double> histogram)
                {
                    lock (advised)
                    {
                        advised[instrument.Name] = histogram.Advice?.HistogramBucketBoundaries ?? [];
                    }
                }
            },
        };
        listener.Start();
        var options = new TransactionCoordinatorOptions { NodeId = "advice" };
        await using var coordinator = new TransactionCoordinator(options, new InMemoryTransactionLog());
        var directory = Directory.CreateTempSubdirectory("twopc-otel-");
        await using (var wal = new TwoPC.Wal.FileTransactionLog(new TwoPC.Wal.FileTransactionLogOptions { Directory = directory.FullName }))
        {
        }

        directory.Delete(recursive: true);
        foreach (var name in new[] { "twopc.prepare.duration", "twopc.decision.duration", "twopc.phase2.duration", "twopc.transaction.duration", "twopc.wal.flush.duration" })
        {
            Assert.True(advised.TryGetValue(name, out var bounds), name);
            Assert.InRange(bounds.Count, 5, 30);
            Assert.True(bounds[0] <= 0.001 && bounds[^1] <= 60, $"{name}: {string.Join(", ", bounds)} are not seconds");
        }
    }
}
