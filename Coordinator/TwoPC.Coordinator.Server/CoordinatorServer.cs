using TwoPC.Client;
using TwoPC.Coordinator.Server.Security;
using TwoPC.Hosting;

namespace TwoPC.Coordinator.Server;

/// <summary>Builds the standalone coordinator web application.</summary>
public static class CoordinatorServer
{
    /// <summary>The named <see cref="HttpClient"/> used to call remote participants.</summary>
    public const string ParticipantClientName = "twopc-participants";

    /// <summary>The header carrying <c>Coordinator:CallbackKey</c> on every call to a participant.</summary>
    public const string CallbackKeyHeader = TwoPCHeaders.CallbackKey;

    /// <summary>
    /// Builds the application from <paramref name="args"/> (appsettings.json, environment, command line):
    /// the coordinator (section <c>TwoPC</c>), problem details, OpenAPI at <c>/openapi/v1.json</c>,
    /// health at <c>/health</c> and the API (<see cref="TwoPCApiEndpoints.MapTwoPCApi"/>).
    /// </summary>
    public static WebApplication BuildApp(string[] args)
    {
        var builder = WebApplication.CreateBuilder(args);
        builder.Services.AddTwoPCServer(builder.Configuration);

        var app = builder.Build();
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.UseAuthentication();
        app.UseAuthorization();
        app.MapOpenApi();
        app.MapHealthChecks("/health", HealthResponseWriter.Options);
        app.MapTwoPCApi();
        return app;
    }

    /// <summary>Adds the coordinator and everything the API needs to <paramref name="services"/>.</summary>
    public static IServiceCollection AddTwoPCServer(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var server = configuration.GetSection("Coordinator");
        var callTimeout = server.GetValue("ParticipantCallTimeout", TimeSpan.FromSeconds(10));
        var builder = services.AddTwoPhaseCommit(configuration.GetSection(TwoPCOptions.SectionName));

        // Remote participants named here are registered before recovery, so logged decisions reach them after a restart.
        foreach (var name in server.GetSection("RemoteResourceManagers").Get<string[]>() ?? [])
        {
            builder.AddResourceManager((sp, _) => Task.FromResult(new HttpParticipantResourceManager(name, sp.GetRequiredService<IHttpClientFactory>())));
        }

        // Any other name a logged decision names is a remote participant too: its recovery data is the callback
        // URL, so a restarted coordinator re-drives it without the name being configured. The registry creates
        // it, so the API and recovery share one instance per name.
        builder.ResolveResourceManagers((sp, name) => sp.GetRequiredService<TransactionRegistry>().GetOrRegisterRemote(name));

        builder.AddMessaging(configuration);
        services.AddSingleton(new CallbackHosts(server.GetSection("AllowedCallbackHosts").Get<string[]>() ?? []));
        var callbackKey = server["CallbackKey"];
        services.AddHttpClient(ParticipantClientName, client =>
        {
            client.Timeout = callTimeout;
            if (!string.IsNullOrEmpty(callbackKey))
            {
                // Participants that require it (TwoPC:Participant:CallbackKey) refuse commit/rollback calls without it.
                client.DefaultRequestHeaders.Add(CallbackKeyHeader, callbackKey);
            }
        });
        services.AddSingleton<TransactionRegistry>();
        services.AddTwoPCAuthentication(configuration);
        services.AddCoordinatorLimits(configuration);
        services.AddProblemDetails();
        services.AddOpenApi();
        services.ConfigureHttpJsonOptions(o => o.SerializerOptions.PropertyNamingPolicy = System.Text.Json.JsonNamingPolicy.CamelCase);
        return services;
    }
}

/// <summary>
/// The hosts a registered callback URL may name (<c>Coordinator:AllowedCallbackHosts</c>; empty = any). The
/// coordinator POSTs to these addresses, so with a list configured it cannot be made to call anywhere else.
/// </summary>
internal sealed class CallbackHosts(string[] allowed)
{
    private readonly HashSet<string> _allowed = new(allowed, StringComparer.OrdinalIgnoreCase);

    public bool Allows(Uri callbackUrl) => _allowed.Count == 0 || _allowed.Contains(callbackUrl.Host);
}
