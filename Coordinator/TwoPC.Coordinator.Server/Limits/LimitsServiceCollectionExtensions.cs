using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Options;

namespace TwoPC.Coordinator.Server;

/// <summary>Registers the coordinator's resource limits (<see cref="CoordinatorLimitsOptions"/>).</summary>
public static class LimitsServiceCollectionExtensions
{
    /// <summary>
    /// Binds and validates <c>Coordinator:Limits</c> (at start), applies the connection and request limits to Kestrel,
    /// registers the live-transaction and branch limiters, and the exception handler that answers a rejected request or a
    /// coordinator that cannot decide now with a problem detail (413, 408, 400, 503) instead of a 500.
    /// </summary>
    public static IServiceCollection AddCoordinatorLimits(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        services.AddOptions<CoordinatorLimitsOptions>()
            .Bind(configuration.GetSection(CoordinatorLimitsOptions.SectionName))
            .ValidateDataAnnotations()
            .ValidateOnStart();
        services.AddOptions<KestrelServerOptions>().Configure<IOptions<CoordinatorLimitsOptions>>((kestrel, options) =>
        {
            var limits = options.Value;
            kestrel.Limits.MaxConcurrentConnections = limits.MaxConcurrentConnections;
            kestrel.Limits.MaxConcurrentUpgradedConnections = limits.MaxConcurrentConnections;
            kestrel.Limits.RequestHeadersTimeout = limits.RequestHeadersTimeout;
            kestrel.Limits.KeepAliveTimeout = limits.KeepAliveTimeout;
            kestrel.Limits.MaxRequestBodySize = limits.MaxRequestBodySize;
            kestrel.Limits.MinRequestBodyDataRate = new MinDataRate(limits.MinRequestBodyDataRate, limits.MinRequestBodyDataRateGracePeriod);
        });
        services.AddSingleton<LiveTransactionLimiter>();
        services.AddSingleton<BranchLimiter>();
        services.AddExceptionHandler<ProblemExceptionHandler>();
        services.AddHostedService<LimitsStartupCheck>();
        return services;
    }
}
