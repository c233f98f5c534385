using System.Buffers;
using System.Text.Json;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using TwoPC.Participants;

namespace TwoPC.Coordinator.Server;

/// <summary>
/// <c>/health</c> as JSON: the overall status and, per check, its status, description, data and error (503 when
/// unhealthy), so a monitor learns why without reading the log.
/// </summary>
public static class HealthResponseWriter
{
    /// <summary>The options <c>/health</c> is mapped with.</summary>
    public static HealthCheckOptions Options { get; } = new() { ResponseWriter = WriteAsync };

    /// <summary>Writes <paramref name="report"/> as <c>{ status, totalDurationMs, checks: { name: { status, description, durationMs, error, data } } }</c>.</summary>
    public static async Task WriteAsync(HttpContext context, HealthReport report)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(report);
        context.Response.ContentType = "application/json; charset=utf-8";
        // Written to memory first (a few hundred bytes): the serializer flushes synchronously, which Kestrel refuses.
        var buffer = new ArrayBufferWriter<byte>(1024);
        using var json = new Utf8JsonWriter(buffer);
        json.WriteStartObject();
        json.WriteString("status", report.Status.ToString());
        json.WriteNumber("totalDurationMs", Math.Round(report.TotalDuration.TotalMilliseconds, 3));
        json.WriteStartObject("checks");
        foreach (var (name, entry) in report.Entries)
        {
            json.WriteStartObject(name);
            json.WriteString("status", entry.Status.ToString());
            json.WriteString("description", entry.Description);
            json.WriteNumber("durationMs", Math.Round(entry.Duration.TotalMilliseconds, 3));
            if (entry.Exception is { } error)
            {
                json.WriteString("error", ReasonText.Truncate(Messages(error)));
            }

            json.WriteStartObject("data");
            foreach (var (key, value) in entry.Data)
            {
                json.WritePropertyName(key);
                JsonSerializer.Serialize(json, value, value?.GetType() ?? typeof(object));
            }

            json.WriteEndObject();
            json.WriteEndObject();
        }

        json.WriteEndObject();
        json.WriteEndObject();
        json.Flush();
        await context.Response.Body.WriteAsync(buffer.WrittenMemory, context.RequestAborted).ConfigureAwait(false);
    }

    // The error and its causes, outermost first (a failed log: "the log has failed: No space left on device").
    private static string Messages(Exception error)
    {
        var messages = new List<string>();
        for (var e = error; e is not null; e = e.InnerException)
        {
            // A message that already quotes its cause is enough.
            if (messages.Count == 0 || !messages[^1].Contains(e.Message, StringComparison.Ordinal))
            {
                messages.Add(e.Message);
            }
        }

        return string.Join(" ← ", messages);
    }
}
