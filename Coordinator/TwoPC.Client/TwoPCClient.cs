using System.Net.Http.Json;
using System.Text.Json;

namespace TwoPC.Client;

/// <summary>The headers of the contract: the transaction id sent to branch services (the signature headers are <see cref="RequestSignature"/>'s).</summary>
public static class TwoPCHeaders
{
    /// <summary><c>TwoPC-Transaction-Id</c>: the global transaction a branch request belongs to.</summary>
    public const string TransactionId = "TwoPC-Transaction-Id";

    /// <summary>
    /// <c>TwoPC-Prepared-Vote</c>: on a branch service's answer, the participant's Yes vote for its branch, signed with the
    /// participant's own key (<c>{keyId};{xid};{timestamp};{signature};{base64 body}</c>, all URI-escaped where needed:
    /// exactly the signature headers and body of the <c>POST /transactions/{id}/branches/{xid}/prepared</c> call it stands for).
    /// <see cref="CoordinatorTransaction"/> collects it from answers to calls made with
    /// <see cref="HttpClientTransactionExtensions.SendInTransactionAsync"/> and relays it with the commit, so the coordinator
    /// needs neither that call nor a prepare callback. Opaque to the caller, who can neither forge nor alter it.
    /// </summary>
    public const string PreparedVote = "TwoPC-Prepared-Vote";
}

/// <summary>
/// Client of the standalone coordinator's transaction API, for the service that runs a global transaction:
/// begin, call the branch services with the transaction id header
/// (<see cref="HttpClientTransactionExtensions.SendInTransactionAsync"/>), then commit or roll back.
/// Participant services use it to register their branches and to ask for decisions during recovery.
/// </summary>
/// <remarks>
/// Give it an <see cref="HttpClient"/> whose <see cref="HttpClient.BaseAddress"/> is the coordinator, and that sends the
/// caller's credentials: a client's API key through <see cref="ApiKeyHandler"/> (or
/// <see cref="TwoPCHttpClientBuilderExtensions.AddTwoPCApiKey"/>), a participant's signature through
/// <see cref="RequestSigningHandler"/>, or a bearer token. A client acts only in the transactions it began; any other
/// answers 404.
/// </remarks>
public sealed class TwoPCClient(HttpClient http)
{
    /// <summary>The <see cref="HttpClient"/> talking to the coordinator.</summary>
    public HttpClient Http { get; } = http ?? throw new ArgumentNullException(nameof(http));

    /// <summary>Begins a global transaction; dispose the result to roll it back unless it was committed.</summary>
    /// <param name="timeout">How long until the coordinator rolls it back; its default when omitted.</param>
    /// <param name="cancellationToken">Cancels the request.</param>
    /// <exception cref="TwoPCApiException">The coordinator refused (for example 503 while it recovers).</exception>
    public async Task<CoordinatorTransaction> BeginAsync(TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        var request = new BeginTransactionRequest(timeout?.TotalSeconds);
        using var response = await Http.PostAsJsonAsync("transactions", request, TwoPCJson.Options, cancellationToken).ConfigureAwait(false);
        var begun = await ReadAsync<BeginTransactionResponse>(response, cancellationToken).ConfigureAwait(false);
        return new CoordinatorTransaction(this, begun.Id, begun.Deadline);
    }

    /// <summary>What the coordinator knows of transaction <paramref name="id"/> (<c>Unknown</c>: no record, so not committed).</summary>
    public async Task<TransactionStatusDto> GetStatusAsync(string id, CancellationToken cancellationToken = default)
    {
        using var response = await Http.GetAsync(TransactionPath(id), cancellationToken).ConfigureAwait(false);
        return await ReadAsync<TransactionStatusDto>(response, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Commits transaction <paramref name="id"/> (two-phase when it has more than one branch); idempotent.</summary>
    /// <returns>The outcome: <c>Committed</c>, <c>RolledBack</c> (a branch voted No or the deadline passed) or a heuristic one.</returns>
    public Task<OutcomeDto> CommitAsync(string id, CancellationToken cancellationToken = default) => FinishAsync(id, "commit", cancellationToken);

    /// <summary>Rolls back transaction <paramref name="id"/>; idempotent.</summary>
    public Task<OutcomeDto> RollbackAsync(string id, CancellationToken cancellationToken = default) => FinishAsync(id, "rollback", cancellationToken);

    /// <summary>
    /// Enlists a remote branch: the coordinator will call <paramref name="callbackUrl"/><c>/prepare</c>,
    /// <c>/commit</c> and <c>/rollback</c>. Answers the XID to prepare under.
    /// </summary>
    /// <exception cref="TwoPCApiException">404 unknown transaction, 409 no longer active.</exception>
    public async Task<RegisterBranchResponse> RegisterBranchAsync(string id, string resourceManager, Uri callbackUrl, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(callbackUrl);
        var body = new RegisterBranchRequest(resourceManager, callbackUrl.AbsoluteUri);
        using var response = await Http.PostAsJsonAsync(TransactionPath(id) + "/branches", body, TwoPCJson.Options, cancellationToken).ConfigureAwait(false);
        return await ReadAsync<RegisterBranchResponse>(response, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Reports that branch <paramref name="xid"/> of transaction <paramref name="id"/> is prepared: the participant's Yes vote,
    /// with the recovery data it would have answered <c>/prepare</c> with. The coordinator then sends that branch no prepare
    /// callback. The participant SDK calls it right after <c>PREPARE TRANSACTION</c>, before its request answers.
    /// </summary>
    /// <param name="id">The global transaction id.</param>
    /// <param name="xid">The branch's XID, as the registration answered it.</param>
    /// <param name="resourceManager">The participant's name, as it registered the branch.</param>
    /// <param name="recoveryData">Base64 recovery data (at most <see cref="PrepareCallbackResponse.MaxRecoveryDataLength"/> characters), or none.</param>
    /// <param name="cancellationToken">Cancels the request.</param>
    /// <exception cref="TwoPCApiException">404 unknown transaction or no such branch waiting for its vote (a coordinator older than
    /// this call answers 404 without problem details), 409 the transaction is no longer active: either way the coordinator asks
    /// <c>/prepare</c> if it still needs the vote.</exception>
    public async Task ReportPreparedAsync(string id, string xid, string resourceManager, string? recoveryData = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(xid);
        var body = new ReportPreparedRequest(resourceManager, recoveryData);
        using var response = await Http.PostAsJsonAsync(TransactionPath(id) + "/branches/" + Uri.EscapeDataString(xid) + "/prepared", body, TwoPCJson.Options, cancellationToken).ConfigureAwait(false);
        await TwoPCApiException.ThrowIfFailedAsync(response, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Stages a message that the coordinator publishes to RabbitMQ (with publisher confirms) if and only if
    /// transaction <paramref name="id"/> commits. Needs a coordinator configured with <c>Coordinator:RabbitMq:Uri</c>.
    /// </summary>
    /// <exception cref="TwoPCApiException">400 invalid message, 404 unknown transaction or messaging not configured, 409 no longer active.</exception>
    public async Task<PublishMessageResponse> PublishAsync<T>(string id, string exchange, string routingKey, T body, string? type = null, IReadOnlyDictionary<string, string>? headers = null, CancellationToken cancellationToken = default)
    {
        var request = new PublishMessageRequest(exchange, routingKey, JsonSerializer.SerializeToElement(body, TwoPCJson.Options), type, headers);
        using var response = await Http.PostAsJsonAsync(TransactionPath(id) + "/messages", request, TwoPCJson.Options, cancellationToken).ConfigureAwait(false);
        return await ReadAsync<PublishMessageResponse>(response, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The coordinator's node id and epoch.</summary>
    public async Task<CoordinatorInfoDto> GetInfoAsync(CancellationToken cancellationToken = default)
    {
        using var response = await Http.GetAsync("info", cancellationToken).ConfigureAwait(false);
        return await ReadAsync<CoordinatorInfoDto>(response, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Commits, relaying the participants' signed Yes votes collected from the branch services' answers.</summary>
    internal async Task<OutcomeDto> CommitRelayingAsync(string id, IReadOnlyList<string> preparedVotes, CancellationToken cancellationToken)
    {
        if (preparedVotes.Count == 0)
        {
            return await CommitAsync(id, cancellationToken).ConfigureAwait(false);
        }

        using var response = await Http.PostAsJsonAsync(TransactionPath(id) + "/commit", new CommitRequest(preparedVotes), TwoPCJson.Options, cancellationToken).ConfigureAwait(false);
        return await ReadAsync<OutcomeDto>(response, cancellationToken).ConfigureAwait(false);
    }

    private async Task<OutcomeDto> FinishAsync(string id, string action, CancellationToken cancellationToken)
    {
        using var response = await Http.PostAsync(TransactionPath(id) + "/" + action, null, cancellationToken).ConfigureAwait(false);
        return await ReadAsync<OutcomeDto>(response, cancellationToken).ConfigureAwait(false);
    }

    private static string TransactionPath(string id)
    {
        ArgumentException.ThrowIfNullOrEmpty(id);
        return "transactions/" + Uri.EscapeDataString(id);
    }

    internal static async Task<T> ReadAsync<T>(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        await TwoPCApiException.ThrowIfFailedAsync(response, cancellationToken).ConfigureAwait(false);
        return await response.Content.ReadFromJsonAsync<T>(TwoPCJson.Options, cancellationToken).ConfigureAwait(false)
            ?? throw new TwoPCApiException(response.StatusCode, "Empty answer", $"The coordinator answered {(int)response.StatusCode} without a body.");
    }
}

/// <summary>Calls branch services inside a global transaction.</summary>
public static class HttpClientTransactionExtensions
{
    /// <summary>
    /// Sends <paramref name="request"/> with the <see cref="TwoPCHeaders.TransactionId"/> header of <paramref name="transaction"/>,
    /// and keeps the <see cref="TwoPCHeaders.PreparedVote"/> the answer carries for the transaction's commit.
    /// </summary>
    public static async Task<HttpResponseMessage> SendInTransactionAsync(this HttpClient http, HttpRequestMessage request, CoordinatorTransaction transaction, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(http);
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(transaction);
        request.Headers.Remove(TwoPCHeaders.TransactionId);
        request.Headers.Add(TwoPCHeaders.TransactionId, transaction.Id);
        var response = await http.SendAsync(request, cancellationToken).ConfigureAwait(false);
        transaction.CollectPreparedVotes(response);
        return response;
    }

    /// <summary>POSTs <paramref name="body"/> as JSON to a branch service inside <paramref name="transaction"/>.</summary>
    public static async Task<HttpResponseMessage> PostInTransactionAsync<T>(this HttpClient http, string requestUri, T body, CoordinatorTransaction transaction, CancellationToken cancellationToken = default)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, requestUri) { Content = JsonContent.Create(body, options: TwoPCJson.Options) };
        return await http.SendInTransactionAsync(request, transaction, cancellationToken).ConfigureAwait(false);
    }
}
