using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace TwoPC.Samples.Readme;

/// <summary>README "OpenTelemetry" and the TwoPC.OpenTelemetry package README (run by Tests/TwoPC.OpenTelemetry.Tests).</summary>
public static class OpenTelemetrySnippets
{
    /// <summary>README.md, section "OpenTelemetry".</summary>
    public static void Configure(HostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        #region readme
        builder.Services.AddOpenTelemetry()
            .WithTracing(tracing => tracing.AddTwoPCInstrumentation())
            .WithMetrics(metrics => metrics.AddTwoPCInstrumentation());
        #endregion
    }

    /// <summary>Coordinator/TwoPC.OpenTelemetry/README.md.</summary>
    public static void Package(HostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        #region package
        // using OpenTelemetry.Metrics; using OpenTelemetry.Trace;
        builder.Services.AddOpenTelemetry()
            .WithTracing(tracing => tracing.AddTwoPCInstrumentation())
            .WithMetrics(metrics => metrics.AddTwoPCInstrumentation());
        #endregion
    }
}
