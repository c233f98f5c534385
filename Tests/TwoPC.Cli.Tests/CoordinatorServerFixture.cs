using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using TwoPC.Coordinator.Server;

namespace TwoPC.Cli.Tests;

/// <summary>
/// The real coordinator server on a free loopback port (temp log, an API key) and an in-process HTTP
/// participant whose commit answer a test can turn into an error, for the <c>twopc tx</c> tests.
/// </summary>
public sealed class CoordinatorServerFixture : IAsyncLifetime
{
    public const string ApiKey = "cli-admin-key";
    private readonly DirectoryInfo _log = Directory.CreateTempSubdirectory("twopc-cli-server-");
    private WebApplication? _server;
    private WebApplication? _participant;

    public string ServerUrl { get; private set; } = null!;

    public HttpClient Client { get; private set; } = null!;

    /// <summary>Branch state by participant name and XID: prepared, committed, rolledBack.</summary>
    public ConcurrentDictionary<(string Name, string Xid), string> States { get; } = new();

    /// <summary>Participants that answer commit with this status code instead of committing.</summary>
    public ConcurrentDictionary<string, int> CommitStatus { get; } = new();

    private string ParticipantUrl { get; set; } = null!;

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        _participant = builder.Build();
        _participant.MapPost("/{name}/prepare", (string name, XidBody body) =>
        {
            States[(name, body.Xid)] = "prepared";
            return Results.Ok(new { vote = "yes" });
        });
        _participant.MapPost("/{name}/commit", (string name, XidBody body) =>
        {
            if (CommitStatus.TryGetValue(name, out var status))
            {
                return Results.StatusCode(status);
            }

            States[(name, body.Xid)] = "committed";
            return Results.Ok(new { outcome = "committed" });
        });
        _participant.MapPost("/{name}/rollback", (string name, XidBody body) =>
        {
            States[(name, body.Xid)] = "rolledBack";
            return Results.Ok(new { outcome = "rolledBack" });
        });
        await _participant.StartAsync();
        ParticipantUrl = BoundAddress(_participant);
        _server = CoordinatorServer.BuildApp([
            "--Urls=http://127.0.0.1:0",
            "--TwoPC:NodeId=cli-test",
            $"--TwoPC:LogDirectory={_log.FullName}",
            "--TwoPC:RetryMaxDelay=00:00:00.200",
            $"--Admin:ApiKey={ApiKey}",
            // The in-memory participants take any name: development mode, exactly their origin, unsigned callbacks.
            "--Coordinator:AllowUnconfiguredParticipants=true",
            $"--Coordinator:AllowedCallbackOrigins:0={ParticipantUrl.TrimEnd('/')}",
            "--Coordinator:Authentication:AllowAnonymous=true",
            "--Logging:LogLevel:Default=Warning",
        ]);
        await _server.StartAsync();
        ServerUrl = BoundAddress(_server);
        Client = new HttpClient { BaseAddress = new Uri(ServerUrl) };
    }

    public async Task DisposeAsync()
    {
        Client.Dispose();
        foreach (var app in new[] { _participant, _server })
        {
            if (app is not null)
            {
                using var shortly = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                try
                {
                    await app.StopAsync(shortly.Token);
                }
                catch (OperationCanceledException)
                {
                }

                await app.DisposeAsync();
            }
        }

        _log.Delete(recursive: true);
    }

    /// <summary>Begins a transaction with one remote branch per name; returns the id and the XIDs.</summary>
    public async Task<(string Id, string[] Xids)> BeginAsync(params string[] participants)
    {
        using var begun = await Client.PostAsJsonAsync("/transactions", new { timeoutSeconds = 30 });
        Assert.Equal(HttpStatusCode.Created, begun.StatusCode);
        var id = (await begun.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
        var xids = new List<string>();
        foreach (var name in participants)
        {
            using var registered = await Client.PostAsJsonAsync($"/transactions/{id}/branches", new { resourceManager = name, callbackUrl = $"{ParticipantUrl}/{name}" });
            Assert.Equal(HttpStatusCode.Created, registered.StatusCode);
            xids.Add((await registered.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("xid").GetString()!);
        }

        return (id, [.. xids]);
    }

    private static string BoundAddress(WebApplication app) =>
        app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();

    public sealed record XidBody(string Xid);
}
