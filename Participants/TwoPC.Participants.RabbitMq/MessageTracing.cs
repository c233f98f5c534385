using System.Diagnostics;
using System.Text;
using TwoPC.Diagnostics;

namespace TwoPC.Participants.RabbitMq;

/// <summary>
/// W3C trace context on messages: <see cref="RabbitMqBranch.Publish(OutgoingMessage)"/> writes the staging activity's
/// <c>traceparent</c>/<c>tracestate</c> into the message's headers (so they are logged with the decision and survive
/// recovery, in the existing staged-message format), and the inbox consumer continues that trace.
/// </summary>
/// <remarks>Uses <see cref="DistributedContextPropagator.Current"/> (W3C by default), so an application that sets another propagator gets its format.</remarks>
internal static class MessageTracing
{
    public static readonly ActivitySource Source = new(TwoPCTelemetry.ActivitySourceName, typeof(MessageTracing).Assembly.GetName().Version?.ToString());

    /// <summary>
    /// <paramref name="message"/> with the current activity's trace context added to its headers; unchanged when no
    /// activity is current or the message already carries a <c>traceparent</c> (the application's own wins).
    /// </summary>
    public static OutgoingMessage WithTraceContext(OutgoingMessage message)
    {
        if (Activity.Current is not { } activity || message.Headers?.ContainsKey("traceparent") == true)
        {
            return message;
        }

        var headers = message.Headers is null ? new Dictionary<string, string>(StringComparer.Ordinal) : new Dictionary<string, string>(message.Headers, StringComparer.Ordinal);
        DistributedContextPropagator.Current.Inject(activity, headers, static (carrier, name, value) =>
        {
            if (carrier is Dictionary<string, string> h && !string.IsNullOrEmpty(name) && value is not null)
            {
                h[name] = value;
            }
        });
        return message with { Headers = headers };
    }

    /// <summary>
    /// Starts the span of handling one delivery (<see cref="ActivityKind.Consumer"/>), a child of the trace context
    /// its headers carry, with the messaging semantic-convention tags; <see langword="null"/> when nobody listens.
    /// </summary>
    public static Activity? StartProcess(string queue, string exchange, string routingKey, string? messageId, IDictionary<string, object?>? headers)
    {
        if (!Source.HasListeners())
        {
            return null;
        }

        DistributedContextPropagator.Current.ExtractTraceIdAndState(headers, static (object? carrier, string name, out string? value, out IEnumerable<string>? values) =>
        {
            values = null;
            value = carrier is IDictionary<string, object?> h && h.TryGetValue(name, out var raw)
                ? raw switch { byte[] bytes => Encoding.UTF8.GetString(bytes), string text => text, _ => null }
                : null;
        }, out var traceParent, out var traceState);
        ActivityContext.TryParse(traceParent, traceState, isRemote: true, out var parent);
        var activity = Source.StartActivity("process " + queue, ActivityKind.Consumer, parent);
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag("messaging.system", "rabbitmq");
            activity.SetTag("messaging.operation.type", "process");
            activity.SetTag("messaging.operation.name", "process");
            activity.SetTag("messaging.destination.name", exchange);
            activity.SetTag("messaging.rabbitmq.destination.routing_key", routingKey);
            activity.SetTag("messaging.consumer.group.name", queue);
            activity.SetTag("messaging.message.id", messageId);
        }

        return activity;
    }
}
