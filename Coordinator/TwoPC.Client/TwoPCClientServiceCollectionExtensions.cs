using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace TwoPC.Client;

/// <summary>Registers the coordinator's clients with <c>IHttpClientFactory</c>.</summary>
public static class TwoPCClientServiceCollectionExtensions
{
    /// <summary>The name of the <c>IHttpClientFactory</c> client of <see cref="TwoPCAdminClient"/>.</summary>
    public const string AdminClientName = "TwoPC.Admin";

    /// <summary>
    /// Registers <see cref="TwoPCClient"/> as a typed client of <c>IHttpClientFactory</c> (transient, pooled handlers) whose
    /// base address is <see cref="TwoPCClientOptions.BaseAddress"/> and that sends <see cref="TwoPCClientOptions.ApiKey"/>
    /// (<see cref="ApiKeyHandler"/>); and <see cref="TwoPCAdminClient"/> when <see cref="TwoPCClientOptions.AdminApiKey"/> is
    /// set. The options are validated when the host starts. Returns the coordinator client's builder (for resilience handlers).
    /// </summary>
    /// <param name="services">The application's services.</param>
    /// <param name="configure">Sets the options.</param>
    public static IHttpClientBuilder AddTwoPCClient(this IServiceCollection services, Action<TwoPCClientOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        services.AddOptions<TwoPCClientOptions>().Configure(configure);
        return AddClients(services);
    }

    /// <summary>As <see cref="AddTwoPCClient(IServiceCollection, Action{TwoPCClientOptions})"/>, with the options bound from
    /// <paramref name="configuration"/> (typically the <c>TwoPCClient</c> section: <c>BaseAddress</c>, <c>ApiKey</c>, <c>AdminApiKey</c>).</summary>
    /// <param name="services">The application's services.</param>
    /// <param name="configuration">The section to bind.</param>
    public static IHttpClientBuilder AddTwoPCClient(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        services.AddOptions<TwoPCClientOptions>().Bind(configuration);
        return AddClients(services);
    }

    private static IHttpClientBuilder AddClients(IServiceCollection services)
    {
        services.AddOptions<TwoPCClientOptions>()
            .Validate(o => o.BaseAddress is { IsAbsoluteUri: true }, "TwoPCClient:BaseAddress is required: the coordinator's absolute URL (for example http://coordinator:8080/).")
            .ValidateOnStart();

        services.AddHttpClient(AdminClientName, ConfigureBaseAddress);
        services.TryAddTransient(sp => new TwoPCAdminClient(
            sp.GetRequiredService<IHttpClientFactory>().CreateClient(AdminClientName),
            sp.GetRequiredService<IOptions<TwoPCClientOptions>>().Value.AdminApiKey
                ?? throw new InvalidOperationException("TwoPCClient:AdminApiKey is not set: the admin client needs the coordinator's admin API key.")));

        return services.AddHttpClient<TwoPCClient>(ConfigureBaseAddress)
            .ConfigureAdditionalHttpMessageHandlers((handlers, sp) =>
            {
                if (sp.GetRequiredService<IOptions<TwoPCClientOptions>>().Value.ApiKey is { Length: > 0 } apiKey)
                {
                    handlers.Add(new ApiKeyHandler(apiKey));
                }
            });
    }

    private static void ConfigureBaseAddress(IServiceProvider services, HttpClient http)
    {
        var address = services.GetRequiredService<IOptions<TwoPCClientOptions>>().Value.BaseAddress
            ?? throw new InvalidOperationException("TwoPCClient:BaseAddress is required: the coordinator's absolute URL.");

        // The client's paths are relative ("transactions/..."): without a trailing slash the last segment would be replaced.
        http.BaseAddress = address.AbsoluteUri.EndsWith('/') ? address : new Uri(address.AbsoluteUri + "/");
    }
}
