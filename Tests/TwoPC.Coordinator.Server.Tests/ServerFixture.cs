using System.Collections.Concurrent;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace TwoPC.Coordinator.Server.Tests;

/// <summary>The real coordinator server on a free loopback port, with a temp log directory and an API key.</summary>
public sealed class ServerFixture : IAsyncLifetime
{
    public const string ApiKey = "test-admin-key";
    private readonly DirectoryInfo _log = Directory.CreateTempSubdirectory("twopc-server-");
    private WebApplication? _app;

    public HttpClient Client { get; private set; } = null!;

    /// <summary>The server's services (tests look at the coordinator behind the API).</summary>
    public IServiceProvider Services => _app!.Services;

    public Participants Participants { get; } = new();

    public async Task InitializeAsync()
    {
        // The in-memory participants take any name: the coordinator runs in development mode for them (unconfigured
        // participants at exactly their origin, unsigned callbacks); CallbackSecurityTests covers the secure default.
        await Participants.StartAsync();
        _app = CoordinatorServer.BuildApp([
            "--Urls=http://127.0.0.1:0",
            "--TwoPC:NodeId=server-test",
            $"--TwoPC:LogDirectory={_log.FullName}",
            "--TwoPC:RetryMaxDelay=00:00:00.200",
            $"--Admin:ApiKey={ApiKey}",
            .. DevelopmentParticipants(Participants.BaseAddress),
            "--Logging:LogLevel:Default=Warning",
        ]);
        await _app.StartAsync();
        Client = new HttpClient { BaseAddress = new Uri(BoundAddress(_app)) };
    }

    /// <summary>Settings that let any name register a branch at <paramref name="origin"/> (development mode).</summary>
    public static string[] DevelopmentParticipants(string origin) =>
    [
        "--Coordinator:AllowUnconfiguredParticipants=true",
        $"--Coordinator:AllowedCallbackOrigins:0={origin.TrimEnd('/')}",
        "--Coordinator:Authentication:AllowAnonymous=true",
    ];

    public async Task DisposeAsync()
    {
        Client.Dispose();
        await Participants.DisposeAsync();
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }

        _log.Delete(recursive: true);
    }

    internal static string BoundAddress(WebApplication app) =>
        app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
}

/// <summary>An in-memory remote participant endpoint: each participant lives under /{name}.</summary>
public sealed class Participants : IAsyncDisposable
{
    private WebApplication? _app;

    /// <summary>Branch state by participant name and XID: prepared, committed, rolledBack.</summary>
    public ConcurrentDictionary<(string Name, string Xid), string> States { get; } = new();

    /// <summary>Participants that answer 409 to prepare.</summary>
    public ConcurrentDictionary<string, bool> FailPrepare { get; } = new();

    /// <summary>Participants that answer prepare with 425 (still in progress) this many more times before voting yes.</summary>
    public ConcurrentDictionary<string, int> PrepareTooEarly { get; } = new();

    /// <summary>Participants that answer commit with this status code (500, 425, ...) instead of committing.</summary>
    public ConcurrentDictionary<string, int> CommitStatus { get; } = new();

    /// <summary>Participants that answer commit with <c>rolledBack</c> (someone rolled the branch back by hand: a heuristic).</summary>
    public ConcurrentDictionary<string, bool> CommitRolledBack { get; } = new();

    /// <summary>Participants that answer rollback with this status code (500, ...) instead of rolling back.</summary>
    public ConcurrentDictionary<string, int> RollbackStatus { get; } = new();

    /// <summary>Every call, as "name action xid".</summary>
    public ConcurrentQueue<string> Calls { get; } = new();

    /// <summary>The recovery data each commit callback carried (null: none), by participant and XID.</summary>
    public ConcurrentDictionary<(string Name, string Xid), string?> CommitRecoveryData { get; } = new();

    public string BaseAddress { get; private set; } = null!;

    public string CallbackUrl(string name) => $"{BaseAddress}/{name}";

    public async Task StartAsync()
    {
        var builder = WebApplication.CreateBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        _app = builder.Build();
        _app.MapPost("/{name}/prepare", (string name, XidBody body) =>
        {
            Calls.Enqueue($"{name} prepare {body.Xid}");
            if (PrepareTooEarly.TryGetValue(name, out var early) && early > 0 && PrepareTooEarly.TryUpdate(name, early - 1, early))
            {
                return Results.StatusCode(425); // Too Early: still in progress
            }

            if (FailPrepare.ContainsKey(name))
            {
                States[(name, body.Xid)] = "rolledBack";
                return Results.StatusCode(StatusCodes.Status409Conflict);
            }

            States[(name, body.Xid)] = "prepared";
            return Results.Ok(new { vote = "yes" });
        });
        _app.MapPost("/{name}/commit", (string name, XidBody body) =>
        {
            Calls.Enqueue($"{name} commit {body.Xid}");
            CommitRecoveryData[(name, body.Xid)] = body.RecoveryData;
            if (CommitStatus.TryGetValue(name, out var status))
            {
                return Results.StatusCode(status);
            }

            if (CommitRolledBack.ContainsKey(name))
            {
                States[(name, body.Xid)] = "rolledBack";
                return Results.Ok(new { outcome = "rolledBack" });
            }

            States[(name, body.Xid)] = "committed";
            return Results.Ok(new { outcome = "committed" });
        });
        _app.MapPost("/{name}/rollback", (string name, XidBody body) =>
        {
            Calls.Enqueue($"{name} rollback {body.Xid}");
            if (RollbackStatus.TryGetValue(name, out var status))
            {
                return Results.StatusCode(status);
            }

            States[(name, body.Xid)] = "rolledBack";
            return Results.Ok(new { outcome = "rolledBack" });
        });
        await _app.StartAsync();
        BaseAddress = ServerFixture.BoundAddress(_app);
    }

    public async ValueTask DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }

    public sealed record XidBody(string Xid, string? RecoveryData = null);
}
