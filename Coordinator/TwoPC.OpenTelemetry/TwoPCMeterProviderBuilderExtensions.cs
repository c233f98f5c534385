using TwoPC.Diagnostics;

// In OpenTelemetry's own namespace (as Npgsql.OpenTelemetry does): the method is found where WithMetrics is written.
namespace OpenTelemetry.Metrics;

/// <summary>Adds TwoPC's metrics to an OpenTelemetry meter provider.</summary>
public static class TwoPCMeterProviderBuilderExtensions
{
    /// <summary>
    /// Collects TwoPC's metrics (meter <see cref="TwoPCTelemetry.MeterName"/>): the coordinator's transactions and
    /// phase durations, the write-ahead log, and the PostgreSQL, RabbitMQ and remote participants. The duration
    /// histograms (seconds) carry bucket advice, which applies unless a view sets other boundaries.
    /// </summary>
    public static MeterProviderBuilder AddTwoPCInstrumentation(this MeterProviderBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.AddMeter(TwoPCTelemetry.MeterName);
    }
}
