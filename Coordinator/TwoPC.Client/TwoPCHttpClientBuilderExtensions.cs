using Microsoft.Extensions.DependencyInjection;

namespace TwoPC.Client;

/// <summary>Credentials for the coordinator's API on clients made by <c>IHttpClientFactory</c>.</summary>
public static class TwoPCHttpClientBuilderExtensions
{
    /// <summary>
    /// Sends <paramref name="apiKey"/> (<c>Authorization: ApiKey {key}</c>) on every request of this named client:
    /// <c>services.AddHttpClient("coordinator", c =&gt; c.BaseAddress = url).AddTwoPCApiKey(key)</c>, then
    /// <c>new TwoPCClient(factory.CreateClient("coordinator"))</c>.
    /// </summary>
    /// <param name="builder">The named client's builder.</param>
    /// <param name="apiKey">The client's API key (the server's <c>Coordinator:Clients:{name}:ApiKey</c>).</param>
    public static IHttpClientBuilder AddTwoPCApiKey(this IHttpClientBuilder builder, string apiKey)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrWhiteSpace(apiKey);
        return builder.AddHttpMessageHandler(() => new ApiKeyHandler(apiKey));
    }
}
