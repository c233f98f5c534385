using System.Net;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;

namespace TwoPC.Coordinator.Server.Security;

/// <summary>
/// At start: says how the transaction API authenticates, warns when anonymous access is on, and refuses to start with
/// anonymous access on any address that is not loopback — the configured ones before the server binds, the bound ones
/// (Kestrel endpoints, default ports) right after.
/// </summary>
internal sealed class AuthenticationStartupCheck(
    ApiAuthenticationOptions options,
    ApiClients clients,
    ParticipantDirectory participants,
    IConfiguration configuration,
    IServer server,
    ILogger<AuthenticationStartupCheck> logger) : IHostedLifecycleService
{
    public Task StartingAsync(CancellationToken cancellationToken)
    {
        var signing = participants.All.Count(p => p.Key is not null);
        Log.AuthenticationConfigured(logger, clients.Count, signing, options.Bearer, options.AllowAnonymous);
        if (!options.AllowAnonymous)
        {
            if (clients.Count == 0 && signing == 0 && !options.Bearer)
            {
                Log.NoCredentialsConfigured(logger);
            }

            return Task.CompletedTask;
        }

        Log.AnonymousAccessOn(logger);
        var configured = (configuration["urls"] ?? string.Empty).Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Concat(Ports(configuration["http_ports"], "http")).Concat(Ports(configuration["https_ports"], "https"));
        Refuse(configured);
        return Task.CompletedTask;
    }

    public Task StartedAsync(CancellationToken cancellationToken)
    {
        if (options.AllowAnonymous)
        {
            Refuse(server.Features.Get<IServerAddressesFeature>()?.Addresses ?? []);
        }

        return Task.CompletedTask;
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Whether an address (<c>http://127.0.0.1:5080</c>, <c>http://localhost:0</c>, <c>http://*:8080</c>) listens on loopback only.</summary>
    internal static bool IsLoopback(string address)
    {
        // Kestrel reads "*" and "+" (any address) too, which Uri does not parse as hosts.
        var host = address;
        var scheme = address.IndexOf("://", StringComparison.Ordinal);
        if (scheme >= 0)
        {
            host = address[(scheme + 3)..];
        }

        var end = host.StartsWith('[') ? host.IndexOf(']', StringComparison.Ordinal) + 1 : host.IndexOfAny([':', '/']);
        host = end > 0 ? host[..end] : host;
        host = host.Trim('[', ']');
        return string.Equals(host, "localhost", StringComparison.OrdinalIgnoreCase)
            || (IPAddress.TryParse(host, out var ip) && IPAddress.IsLoopback(ip));
    }

    private static IEnumerable<string> Ports(string? ports, string scheme) =>
        (ports ?? string.Empty).Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(p => $"{scheme}://*:{p}");

    private static void Refuse(IEnumerable<string> addresses)
    {
        var open = addresses.Where(a => !IsLoopback(a)).ToArray();
        if (open.Length > 0)
        {
            throw new InvalidOperationException(
                $"Coordinator:Authentication:AllowAnonymous=true is allowed only when the coordinator listens on loopback addresses, and it listens on {string.Join(", ", open)}. "
                + "Listen on 127.0.0.1 only, or turn anonymous access off and give callers credentials: Coordinator:Clients:{name}:ApiKey, Authentication:Schemes:Bearer, Coordinator:Participants:{name}:Key.");
        }
    }
}
