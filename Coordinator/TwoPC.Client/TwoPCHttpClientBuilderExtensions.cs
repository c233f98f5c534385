using Microsoft.Extensions.DependencyInjection;

namespace TwoPC.Client;

/// <summary>Credentials for the coordinator's API, and transaction propagation to branch services, on clients made by <c>IHttpClientFactory</c>.</summary>
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

    /// <summary>
    /// Sends the <see cref="CoordinatorTransaction.Current"/> transaction's id (<see cref="TwoPCHeaders.TransactionId"/>) on
    /// every request of this client made inside <c>using (tx.Enter())</c>, through <see cref="TwoPCTransactionPropagationHandler"/>:
    /// <c>services.AddHttpClient("inventory", c =&gt; c.BaseAddress = url).AddTwoPCTransactionPropagation()</c>.
    /// </summary>
    /// <param name="builder">The branch service client's builder.</param>
    public static IHttpClientBuilder AddTwoPCTransactionPropagation(this IHttpClientBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.AddHttpMessageHandler(() => new TwoPCTransactionPropagationHandler());
    }
}
