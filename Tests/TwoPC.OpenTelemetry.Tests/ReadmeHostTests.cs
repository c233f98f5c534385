using System.Diagnostics;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;
using TwoPC.Protocol;
using TwoPC.Testing;

namespace TwoPC.OpenTelemetry.Tests;

/// <summary>The README's OpenTelemetry block (Samples/TwoPC.Samples.Readme) run in a Generic Host (meters created through IMeterFactory).</summary>
// One at a time: a provider collects every TwoPC source and meter in the process, also another test's.
[Collection("telemetry")]
public sealed class ReadmeHostTests
{
    [Fact]
    public async Task The_readme_one_liner_collects_spans_and_metrics_in_a_host()
    {
        var spans = new List<Activity>();
        var metrics = new List<MetricSnapshot>();
        var builder = Host.CreateApplicationBuilder();

        // The README's block (region OpenTelemetrySnippets.cs#readme).
        TwoPC.Samples.Readme.OpenTelemetrySnippets.Configure(builder);

        builder.Services.ConfigureOpenTelemetryTracerProvider(tracing => tracing.AddInMemoryExporter(spans));
        builder.Services.ConfigureOpenTelemetryMeterProvider(metering => metering.AddInMemoryExporter(metrics));
        using var host = builder.Build();
        await host.StartAsync();

        var orders = new ScriptedResourceManager("orders");
        var stock = new ScriptedResourceManager("stock");
        var options = new TransactionCoordinatorOptions { NodeId = "readme", RecoveryInterval = TimeSpan.FromHours(1) };
        await using (var coordinator = new TransactionCoordinator(options, new InMemoryTransactionLog(), [orders, stock], meterFactory: host.Services.GetRequiredService<IMeterFactory>()))
        {
            await coordinator.StartAsync();
            await using var tx = coordinator.Begin();
            tx.Enlist(orders.CreateBranch);
            tx.Enlist(stock.CreateBranch);
            await tx.CommitAsync();
        }

        host.Services.GetRequiredService<TracerProvider>().ForceFlush();
        host.Services.GetRequiredService<MeterProvider>().ForceFlush();
        await host.StopAsync();

        Assert.Contains(spans, s => s.OperationName == "twopc.commit");
        Assert.Contains(metrics, m => m.Name == "twopc.transactions.committed");
    }
}
