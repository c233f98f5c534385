namespace TwoPC.Client;

/// <summary>
/// A global transaction begun through <see cref="TwoPCClient.BeginAsync"/>; <see cref="Enter"/> makes it the ambient
/// <see cref="Current"/> one that outgoing calls carry. Disposing it without
/// <see cref="CommitAsync"/> rolls it back (best effort: the coordinator's deadline rolls it back anyway).
/// </summary>
public sealed partial class CoordinatorTransaction : IAsyncDisposable
{
    private const int MaxPreparedVotes = 256;
    private readonly TwoPCClient _client;
    private readonly System.Collections.Concurrent.ConcurrentQueue<string> _preparedVotes = new();
    private int _finished;

    internal CoordinatorTransaction(TwoPCClient client, string id, DateTimeOffset deadline)
    {
        _client = client;
        Id = id;
        Deadline = deadline;
    }

    /// <summary>The global transaction id; send it to branch services in <see cref="TwoPCHeaders.TransactionId"/>.</summary>
    public string Id { get; }

    /// <summary>When the coordinator rolls it back if it has not committed.</summary>
    public DateTimeOffset Deadline { get; }

    /// <summary>Stages a message published if and only if this transaction commits (see <see cref="TwoPCClient.PublishAsync"/>).</summary>
    public Task<PublishMessageResponse> PublishAsync<T>(string exchange, string routingKey, T body, string? type = null, IReadOnlyDictionary<string, string>? headers = null, CancellationToken cancellationToken = default) =>
        _client.PublishAsync(Id, exchange, routingKey, body, type, headers, cancellationToken);

    /// <summary>
    /// Commits (see <see cref="TwoPCClient.CommitAsync"/>), relaying the participants' signed Yes votes that the branch
    /// services answered with (<see cref="TwoPCHeaders.PreparedVote"/>), so the coordinator sends those branches no prepare callback.
    /// </summary>
    public Task<OutcomeDto> CommitAsync(CancellationToken cancellationToken = default)
    {
        Interlocked.Exchange(ref _finished, 1);
        return _client.CommitRelayingAsync(Id, [.. _preparedVotes], cancellationToken);
    }

    /// <summary>Keeps the <see cref="TwoPCHeaders.PreparedVote"/> headers of a branch service's answer (at most 256 in all).</summary>
    internal void CollectPreparedVotes(HttpResponseMessage response)
    {
        if (response.Headers.TryGetValues(TwoPCHeaders.PreparedVote, out var votes))
        {
            foreach (var vote in votes)
            {
                if (_preparedVotes.Count < MaxPreparedVotes && vote.Length <= 8 * 1024)
                {
                    _preparedVotes.Enqueue(vote);
                }
            }
        }
    }

    /// <summary>Rolls back (see <see cref="TwoPCClient.RollbackAsync"/>).</summary>
    public Task<OutcomeDto> RollbackAsync(CancellationToken cancellationToken = default)
    {
        Interlocked.Exchange(ref _finished, 1);
        return _client.RollbackAsync(Id, cancellationToken);
    }

    /// <summary>Rolls back unless <see cref="CommitAsync"/> or <see cref="RollbackAsync"/> was called.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _finished, 1) != 0)
        {
            return;
        }

        try
        {
            await _client.RollbackAsync(Id).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is HttpRequestException or TwoPCApiException or TaskCanceledException)
        {
            // The coordinator rolls the transaction back at its deadline.
        }
    }

    /// <inheritdoc />
    public override string ToString() => Id;
}
