namespace TwoPC.Client;

/// <summary>
/// Signs every request an <see cref="HttpClient"/> sends with one participant's key (<see cref="RequestSignature"/>):
/// what a remote participant puts in front of its client of the coordinator's API.
/// </summary>
/// <param name="keyId">The participant's resource manager name.</param>
/// <param name="key">The participant's key, shared with the coordinator only.</param>
/// <param name="timeProvider">The clock the timestamps come from.</param>
public sealed class RequestSigningHandler(string keyId, string key, TimeProvider timeProvider) : DelegatingHandler
{
    /// <inheritdoc />
    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        await RequestSignature.SignAsync(request, keyId, key, timeProvider.GetUtcNow(), cancellationToken).ConfigureAwait(false);
        return await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
    }
}
