using Dapper;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace TwoPC.Participants.Remote.Tests;

/// <summary>
/// A participant service on 127.0.0.1:<c>port</c> for the remote tests: the participant SDK on its own database, configured
/// against the coordinator with its key, callbacks mapped at <c>/twopc</c>. The test maps its branch endpoints and starts it.
/// </summary>
internal static class OneParticipantService
{
    /// <summary>Creates the service's <c>items (id text PRIMARY KEY)</c> table when it is not there yet.</summary>
    public static async Task CreateItemsTableAsync(string connectionString)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.ExecuteAsync("CREATE TABLE IF NOT EXISTS items (id text PRIMARY KEY)");
    }

    /// <summary>Builds the service; <paramref name="configure"/> runs after the defaults (name, URLs, key).</summary>
    public static WebApplication Build(string connectionString, string name, int port, Uri coordinatorUrl, string key, Action<RemoteParticipantOptions>? configure = null)
    {
        var builder = WebApplication.CreateBuilder();
        builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.Services.AddSingleton(_ => NpgsqlDataSource.Create(connectionString));
        builder.Services.AddTwoPCRemoteParticipant(sp => sp.GetRequiredService<NpgsqlDataSource>(), configure: o =>
        {
            o.Name = name;
            o.CoordinatorUrl = coordinatorUrl;
            o.CallbackUrl = new Uri($"http://127.0.0.1:{port}/twopc");
            o.Key = key;
            configure?.Invoke(o);
        });
        var app = builder.Build();
        app.MapTwoPCParticipant();
        return app;
    }
}
