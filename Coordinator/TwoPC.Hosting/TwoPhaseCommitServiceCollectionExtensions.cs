using System.Diagnostics.Metrics;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using TwoPC.Durability;
using TwoPC.Protocol;

namespace TwoPC.Hosting;

/// <summary>Adds an embedded TwoPC coordinator to a Generic Host application.</summary>
public static class TwoPhaseCommitServiceCollectionExtensions
{
    /// <summary>
    /// Adds the coordinator: options bound from <paramref name="configuration"/> (typically the <c>TwoPC</c>
    /// section) and/or <paramref name="configure"/>, validated at start (an unknown key in a <paramref name="configuration"/>
    /// section, other than the remote participant's <c>Participant</c> subsection, fails the start too); a hosted service that recovers
    /// before the host reports started; the <see cref="TransactionCoordinator"/> singleton; the file write-ahead log as
    /// the <see cref="ITransactionLog"/> (unless one is already registered) — the file write-ahead log, or the shared PostgreSQL
    /// log with <c>TwoPC:Log:Kind = PostgreSql</c>; and a
    /// <c>twopc</c> health check.
    /// </summary>
    public static TwoPhaseCommitBuilder AddTwoPhaseCommit(this IServiceCollection services, IConfiguration? configuration = null, Action<TwoPCOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var options = services.AddOptions<TwoPCOptions>();
        if (configuration is not null)
        {
            options.Bind(configuration);

            // A key nothing reads (a typo) fails the start instead of silently leaving the default in force. Only a
            // section is checked: a whole configuration root holds everything else the application reads too.
            if (configuration is IConfigurationSection section)
            {
                services.AddSingleton<IValidateOptions<TwoPCOptions>>(new TwoPCConfigurationKeysValidator(section));
            }
        }

        if (configure is not null)
        {
            options.Configure(configure);
        }

        options.ValidateDataAnnotations().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<TwoPCOptions>, TwoPCOptionsValidator>());
        // TryAdd: a log registered before this call (a shared, highly available log) replaces the file log.
        services.TryAddSingleton<ITransactionLog>(sp => TwoPhaseCommitHostedService.CreateLog(
            sp.GetRequiredService<IOptions<TwoPCOptions>>().Value, sp.GetRequiredService<ILoggerFactory>(), sp.GetService<IMeterFactory>(), sp.GetService<TimeProvider>()));
        services.TryAddSingleton<TwoPhaseCommitHostedService>();
        services.AddHostedService(sp => sp.GetRequiredService<TwoPhaseCommitHostedService>());
        services.TryAddSingleton(sp => sp.GetRequiredService<TwoPhaseCommitHostedService>().Coordinator);
        services.AddHealthChecks().AddCheck<TwoPCHealthCheck>("twopc", HealthStatus.Unhealthy, ["twopc"]);
        return new TwoPhaseCommitBuilder(services);
    }
}
