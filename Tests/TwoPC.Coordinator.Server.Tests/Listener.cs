using System.Collections.Concurrent;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace TwoPC.Coordinator.Server.Tests;

/// <summary>
/// A real Kestrel listener on 127.0.0.1:0 that records every request it receives (method, path, headers, body) and
/// answers with a handler the test gives: a participant, an attacker's endpoint, a redirect target.
/// </summary>
public sealed class Listener : IAsyncDisposable
{
    private readonly WebApplication _app;

    private Listener(WebApplication app) => _app = app;

    /// <summary>Every request received, in order.</summary>
    public ConcurrentQueue<ReceivedRequest> Requests { get; } = new();

    public Uri BaseAddress { get; private set; } = null!;

    public int Port => BaseAddress.Port;

    public static async Task<Listener> StartAsync(Func<HttpContext, ReceivedRequest, Task> handler)
    {
        var builder = WebApplication.CreateBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        var app = builder.Build();
        var listener = new Listener(app);
        app.Run(async context =>
        {
            using var body = new MemoryStream();
            await context.Request.Body.CopyToAsync(body, context.RequestAborted);
            var received = new ReceivedRequest(
                context.Request.Method,
                context.Request.Path.Value ?? string.Empty,
                context.Request.Headers.ToDictionary(h => h.Key, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase),
                body.ToArray());
            listener.Requests.Enqueue(received);
            await handler(context, received);
        });
        await app.StartAsync();
        listener.BaseAddress = new Uri(ServerFixture.BoundAddress(app));
        return listener;
    }

    /// <summary>A participant that votes yes and commits/rolls back everything.</summary>
    public static Task<Listener> StartParticipantAsync() => StartAsync((context, request) => AnswerAsParticipantAsync(context, request));

    public static Task AnswerAsParticipantAsync(HttpContext context, ReceivedRequest request) =>
        request.Path.EndsWith("/prepare", StringComparison.Ordinal) ? context.Response.WriteAsJsonAsync(new { vote = "yes" })
        : request.Path.EndsWith("/commit", StringComparison.Ordinal) ? context.Response.WriteAsJsonAsync(new { outcome = "committed" })
        : context.Response.WriteAsJsonAsync(new { outcome = "rolledBack" });

    public async ValueTask DisposeAsync()
    {
        using var shortly = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        try
        {
            await _app.StopAsync(shortly.Token);
        }
        catch (OperationCanceledException)
        {
        }

        await _app.DisposeAsync();
    }
}

/// <summary>One request a <see cref="Listener"/> received.</summary>
public sealed record ReceivedRequest(string Method, string Path, IReadOnlyDictionary<string, string> Headers, byte[] Body);
