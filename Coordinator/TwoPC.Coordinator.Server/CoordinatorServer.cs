using System.Threading.RateLimiting;
using Microsoft.Extensions.Options;
using TwoPC.Client;
using TwoPC.Coordinator.Server.Security;
using TwoPC.Hosting;

namespace TwoPC.Coordinator.Server;

/// <summary>Builds the standalone coordinator web application.</summary>
public static class CoordinatorServer
{
    /// <summary>The named <see cref="HttpClient"/> used to call remote participants.</summary>
    public const string ParticipantClientName = "twopc-participants";

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

        // Before authentication: a request about another node's transaction is that node's to authenticate and serve.
        app.UseMiddleware<Cluster.ClusterForwarding>();
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

        DeploymentSecrets.Check(configuration);

        // The other nodes of a cluster on a shared log, to forward requests about their transactions to.
        services.AddSingleton(Cluster.ClusterNodes.FromConfiguration(server));
        services.AddHttpClient(Cluster.ClusterForwarding.ClientName, client => client.Timeout = callTimeout);

        // Who the coordinator calls back, and how much at once: checked here, so a bad setting stops the start.
        var directory = ParticipantDirectory.FromConfiguration(server);
        services.AddSingleton(directory);
        services.AddHostedService<ParticipantStartupReport>();

        // Configured participants are registered before recovery, at their configured callback URL, so logged decisions
        // reach them (there) after a restart. Names in RemoteResourceManagers are accepted only in unconfigured mode.
        foreach (var participant in directory.All)
        {
            builder.AddResourceManager((sp, _) => Task.FromResult(new HttpParticipantResourceManager(participant.Name, sp.GetRequiredService<IHttpClientFactory>(), participant.CallbackUrl)));
        }

        foreach (var name in server.GetSection("RemoteResourceManagers").Get<string[]>() ?? [])
        {
            if (!directory.TryGet(name, out _))
            {
                builder.AddResourceManager((sp, _) => Task.FromResult(new HttpParticipantResourceManager(name, sp.GetRequiredService<IHttpClientFactory>())));
            }
        }

        // Any other name a logged decision names is a remote participant too: its recovery data is the callback
        // URL, so a restarted coordinator re-drives it without the name being configured. The registry creates
        // it, so the API and recovery share one instance per name.
        builder.ResolveResourceManagers((sp, name) => sp.GetRequiredService<TransactionRegistry>().GetOrRegisterRemote(name));

        builder.AddMessaging(configuration);
        // The participant-call bounds are Coordinator:Limits like the others (one options class, validated at start).
        services.AddSingleton(sp => new ConcurrencyLimiter(new ConcurrencyLimiterOptions
        {
            PermitLimit = sp.GetRequiredService<IOptions<CoordinatorLimitsOptions>>().Value.MaxConcurrentParticipantCalls,
            QueueLimit = int.MaxValue,
            QueueProcessingOrder = QueueProcessingOrder.OldestFirst,
        }));
        services.AddHttpClient(ParticipantClientName, client =>
            {
                client.Timeout = callTimeout;
                client.MaxResponseContentBufferSize = CoordinatorLimitsOptions.MaxParticipantAnswerBytes;
            })
            .ConfigurePrimaryHttpMessageHandler(sp => new SocketsHttpHandler
            {
                // A redirect would carry a signed call to an address nobody configured: a 3xx is the participant's error.
                AllowAutoRedirect = false,
                MaxConnectionsPerServer = sp.GetRequiredService<IOptions<CoordinatorLimitsOptions>>().Value.MaxParticipantConnectionsPerServer,

                // An answer left unread (an error answer, or one over MaxAnswerBytes) is drained this far at most to reuse
                // the connection; past it, the connection is closed.
                MaxResponseDrainSize = CoordinatorLimitsOptions.MaxParticipantAnswerBytes,
                PooledConnectionLifetime = TimeSpan.FromMinutes(5),
            })
            .AddHttpMessageHandler(sp => new ParticipantCallHandler(
                sp.GetRequiredService<ParticipantDirectory>(),
                sp.GetRequiredService<ConcurrencyLimiter>(),
                sp.GetService<TimeProvider>() ?? TimeProvider.System,
                sp.GetRequiredService<ILoggerFactory>().CreateLogger("TwoPC.Coordinator.Server.Participants")));
        services.AddSingleton<TransactionRegistry>();
        services.AddTwoPCAuthentication(configuration);
        services.AddCoordinatorLimits(configuration);
        services.AddProblemDetails();
        services.AddOpenApi();
        services.ConfigureHttpJsonOptions(o => o.SerializerOptions.PropertyNamingPolicy = System.Text.Json.JsonNamingPolicy.CamelCase);
        return services;
    }
}

