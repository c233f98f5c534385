namespace TwoPC.Client;

/// <summary>
/// Adds the <see cref="TwoPCHeaders.TransactionId"/> header of the <see cref="CoordinatorTransaction.Current"/> transaction
/// to every request sent while one is current, so a branch service's handler joins it; a request outside a transaction
/// goes out unchanged, and a request that already has the header keeps it. Put it on the clients of branch services
/// (<see cref="TwoPCHttpClientBuilderExtensions.AddTwoPCTransactionPropagation"/>), not on a client of third parties: the
/// header tells the receiver which transaction the caller is in.
/// </summary>
public sealed class TwoPCTransactionPropagationHandler : DelegatingHandler
{
    /// <summary>Creates the handler (an <c>IHttpClientFactory</c> sets its inner handler).</summary>
    public TwoPCTransactionPropagationHandler()
    {
    }

    /// <summary>Creates the handler in front of <paramref name="innerHandler"/>.</summary>
    /// <param name="innerHandler">The handler that sends the requests (for example a <see cref="SocketsHttpHandler"/>).</param>
    public TwoPCTransactionPropagationHandler(HttpMessageHandler innerHandler)
        : base(innerHandler)
    {
    }

    /// <inheritdoc />
    /// <remarks>The <see cref="TwoPCHeaders.PreparedVote"/> of an answer to a request sent in the current transaction is kept for its commit.</remarks>
    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var transaction = CoordinatorTransaction.Current;
        if (transaction is not null && !request.Headers.Contains(TwoPCHeaders.TransactionId))
        {
            request.Headers.Add(TwoPCHeaders.TransactionId, transaction.Id);
        }

        var response = await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
        if (transaction is not null && request.Headers.TryGetValues(TwoPCHeaders.TransactionId, out var ids) && ids.SingleOrDefault() == transaction.Id)
        {
            transaction.CollectPreparedVotes(response);
        }

        return response;
    }
}
