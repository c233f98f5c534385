using System.Net.Http.Headers;

namespace TwoPC.Client;

/// <summary>
/// Sends a client's API key to the coordinator's transaction API (<c>Authorization: ApiKey {key}</c>; the server's
/// <c>Coordinator:Clients:{name}:ApiKey</c>) on every request that has no <c>Authorization</c> header of its own.
/// Put it in front of the <see cref="HttpClient"/> given to <see cref="TwoPCClient"/>: with
/// <see cref="TwoPCHttpClientBuilderExtensions.AddTwoPCApiKey(Microsoft.Extensions.DependencyInjection.IHttpClientBuilder, string)"/>
/// for a client from <c>IHttpClientFactory</c>, or <c>new HttpClient(new ApiKeyHandler(key, new SocketsHttpHandler()))</c>.
/// </summary>
/// <remarks>
/// The key is a bearer secret: give each client its own, send it over https (or a trusted network), and use the
/// <see cref="HttpClient"/> for the coordinator only. Redirects do not carry it (the handler that follows them drops
/// <c>Authorization</c>).
/// </remarks>
public sealed class ApiKeyHandler : DelegatingHandler
{
    /// <summary>The scheme word of the <c>Authorization</c> header: <c>ApiKey</c>.</summary>
    public const string Scheme = "ApiKey";

    private readonly AuthenticationHeaderValue _authorization;

    /// <summary>Creates the handler (an <c>IHttpClientFactory</c> sets its inner handler).</summary>
    /// <param name="apiKey">The client's API key.</param>
    public ApiKeyHandler(string apiKey)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(apiKey);
        _authorization = new AuthenticationHeaderValue(Scheme, apiKey);
    }

    /// <summary>Creates the handler in front of <paramref name="innerHandler"/>.</summary>
    /// <param name="apiKey">The client's API key.</param>
    /// <param name="innerHandler">The handler that sends the requests (for example a <see cref="SocketsHttpHandler"/>).</param>
    public ApiKeyHandler(string apiKey, HttpMessageHandler innerHandler)
        : base(innerHandler)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(apiKey);
        _authorization = new AuthenticationHeaderValue(Scheme, apiKey);
    }

    /// <inheritdoc />
    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        request.Headers.Authorization ??= _authorization;
        return base.SendAsync(request, cancellationToken);
    }
}
