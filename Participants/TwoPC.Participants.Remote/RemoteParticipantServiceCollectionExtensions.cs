using System.Diagnostics.Metrics;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using TwoPC.Client;

namespace TwoPC.Participants.Remote;

/// <summary>Adds a remote participant to an ASP.NET Core service.</summary>
public static class RemoteParticipantServiceCollectionExtensions
{
    internal const string CoordinatorClientName = "twopc-coordinator";

    /// <summary>
    /// Adds the <see cref="RemoteParticipant"/> for the database of <paramref name="dataSource"/>: options bound
    /// from <paramref name="configuration"/> and/or <paramref name="configure"/> and validated at start, the
    /// coordinator's <see cref="TwoPCClient"/>, and a hosted service that checks the database at start and runs
    /// participant-side recovery. Map the callbacks with <c>app.MapTwoPCParticipant()</c>.
    /// </summary>
    public static IServiceCollection AddTwoPCRemoteParticipant(
        this IServiceCollection services,
        Func<IServiceProvider, NpgsqlDataSource> dataSource,
        IConfiguration? configuration = null,
        Action<RemoteParticipantOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(dataSource);
        var options = services.AddOptions<RemoteParticipantOptions>();
        if (configuration is not null)
        {
            options.Bind(configuration);
        }

        if (configure is not null)
        {
            options.Configure(configure);
        }

        options.ValidateDataAnnotations().ValidateOnStart();
        services.AddSingleton<IValidateOptions<RemoteParticipantOptions>>(new RemoteParticipantOptionsValidator());
        services.AddHttpClient(CoordinatorClientName, (sp, client) =>
        {
            var o = sp.GetRequiredService<IOptions<RemoteParticipantOptions>>().Value;
            var url = o.CoordinatorUrl!.AbsoluteUri;
            client.BaseAddress = new Uri(url.EndsWith('/') ? url : url + "/");
            client.Timeout = o.CoordinatorCallTimeout;
        }).AddHttpMessageHandler(sp =>
        {
            // Every call to the coordinator is signed with this participant's key: the coordinator knows it is this participant.
            var o = sp.GetRequiredService<IOptions<RemoteParticipantOptions>>().Value;
            return o.Key is { Length: > 0 } key
                ? new RequestSigningHandler(o.Name, key, sp.GetService<TimeProvider>() ?? TimeProvider.System)
                : new UnsignedHandler();
        });
        services.AddTwoPCClientCore();
        services.AddSingleton(sp =>
        {
            var options = sp.GetRequiredService<IOptions<RemoteParticipantOptions>>();
            var loggers = sp.GetRequiredService<ILoggerFactory>();
            var meters = sp.GetService<IMeterFactory>();

            // PostgreSQL is the participant's local resource (ILocalResource is the seam for another database).
            return new RemoteParticipant(
                options,
                sp.GetRequiredService<TwoPCClient>(),
                ct => PostgresLocalResource.CreateAsync(options.Value.Name, dataSource(sp), loggers, meters, ct),
                loggers,
                meters,
                sp.GetService<TimeProvider>());
        });
        services.AddHostedService<RemoteParticipantService>();
        return services;
    }

    private static void AddTwoPCClientCore(this IServiceCollection services) =>
        services.AddSingleton(sp => new TwoPCClient(sp.GetRequiredService<IHttpClientFactory>().CreateClient(CoordinatorClientName)));

    internal static string? Validate(RemoteParticipantOptions o)
    {
        if (!ResourceManagerName.IsValid(o.Name))
        {
            return $"TwoPC:Participant:Name is required: {ResourceManagerName.Rule}, stable across restarts.";
        }

        if (o.CoordinatorUrl is not { IsAbsoluteUri: true } c || (c.Scheme != Uri.UriSchemeHttp && c.Scheme != Uri.UriSchemeHttps))
        {
            return "TwoPC:Participant:CoordinatorUrl is required: the coordinator's absolute http(s) URL.";
        }

        if (o.CallbackUrl is not { IsAbsoluteUri: true } cb || (cb.Scheme != Uri.UriSchemeHttp && cb.Scheme != Uri.UriSchemeHttps)
            || !string.IsNullOrEmpty(cb.Query) || !string.IsNullOrEmpty(cb.Fragment))
        {
            return "TwoPC:Participant:CallbackUrl is required: this service's absolute http(s) URL of the MapTwoPCParticipant prefix, without query or fragment.";
        }

#pragma warning disable CS0618 // the replaced setting is read only to refuse it
        if (!string.IsNullOrEmpty(o.CallbackKey))
        {
            return "TwoPC:Participant:CallbackKey is no longer supported: rename it to TwoPC:Participant:Key, with the value of the coordinator's Coordinator:Participants:{Name}:Key (one key per participant; callbacks are signed with it, never sent).";
        }
#pragma warning restore CS0618

        if (string.IsNullOrEmpty(o.Key))
        {
            if (!o.AllowUnauthenticatedCallbacks)
            {
                return "TwoPC:Participant:Key is required: this participant's key, the same as the coordinator's Coordinator:Participants:{Name}:Key (generate one with `openssl rand -base64 32`). " +
                    "Without it anyone who can reach this service could commit or roll back its prepared branches; only for development, TwoPC:Participant:AllowUnauthenticatedCallbacks=true runs without one.";
            }
        }
        else if (!RequestSignature.IsUsableKey(o.Key, out var problem))
        {
            return $"TwoPC:Participant:Key is not usable: {problem}.";
        }

        return o.RecoveryInterval <= TimeSpan.Zero ? "TwoPC:Participant:RecoveryInterval must be positive."
            : o.CallbackClockSkew <= TimeSpan.Zero ? "TwoPC:Participant:CallbackClockSkew must be positive."
            : o.OrphanSafetyInterval <= TimeSpan.Zero ? "TwoPC:Participant:OrphanSafetyInterval must be positive."
            : o.CoordinatorCallTimeout <= TimeSpan.Zero ? "TwoPC:Participant:CoordinatorCallTimeout must be positive."
            : null;
    }

    // Development mode without a key: calls to the coordinator go unsigned.
    private sealed class UnsignedHandler : DelegatingHandler;

    private sealed class RemoteParticipantOptionsValidator : IValidateOptions<RemoteParticipantOptions>
    {
        public ValidateOptionsResult Validate(string? name, RemoteParticipantOptions options) =>
            RemoteParticipantServiceCollectionExtensions.Validate(options) is { } error ? ValidateOptionsResult.Fail(error) : ValidateOptionsResult.Success;
    }
}

/// <summary>Starts the participant (database checks) before the host serves, then runs participant-side recovery.</summary>
internal sealed class RemoteParticipantService(RemoteParticipant participant) : BackgroundService, IHostedLifecycleService
{
    public Task StartingAsync(CancellationToken cancellationToken) => participant.StartAsync(cancellationToken);

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // The first pass runs right away: a restart settles what the crash left prepared.
        using var timer = new PeriodicTimer(participant.Options.RecoveryInterval);
        do
        {
            try
            {
                await participant.RecoverAsync(stoppingToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                participant.Logger.RecoveryFailed(ex, participant.Options.Name);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
    }
}
