using TwoPC.Diagnostics;

// In OpenTelemetry's own namespace (as Npgsql.OpenTelemetry does): the method is found where WithTracing is written.
namespace OpenTelemetry.Trace;

/// <summary>Adds TwoPC's spans to an OpenTelemetry tracer provider.</summary>
public static class TwoPCTracerProviderBuilderExtensions
{
    /// <summary>
    /// Collects TwoPC's spans (activity source <see cref="TwoPCTelemetry.ActivitySourceName"/>): a span per global
    /// transaction and per branch call, the remote participant's spans, and the inbox consumer's spans (each a child
    /// of the span that published its message).
    /// </summary>
    public static TracerProviderBuilder AddTwoPCInstrumentation(this TracerProviderBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.AddSource(TwoPCTelemetry.ActivitySourceName);
    }
}
