using System.Net.Http.Json;

namespace TwoPC.Client;

/// <summary>
/// Client of the standalone coordinator's admin API, for operators and their tools (the <c>twopc tx</c>
/// commands): what waits in doubt, heuristic outcomes, forcing one branch to commit or roll back,
/// forgetting a heuristic, and running a recovery pass. Every call sends the API key in
/// <see cref="ApiKeyHeader"/>.
/// </summary>
/// <remarks>
/// Give it an <see cref="HttpClient"/> whose <see cref="HttpClient.BaseAddress"/> is the coordinator; the client
/// does not change the <see cref="HttpClient"/>'s default headers, so it can be shared. Every error answer throws
/// <see cref="TwoPCApiException"/> with the status and the server's problem details (401 wrong or missing key,
/// 404 unknown, 409 refused by the safety rules); transport failures throw <see cref="HttpRequestException"/>.
/// </remarks>
public sealed class TwoPCAdminClient
{
    /// <summary>The header carrying the admin API key (the server's <c>Admin:ApiKey</c>).</summary>
    public const string ApiKeyHeader = "X-Api-Key";

    private readonly string _apiKey;

    /// <summary>Creates the client.</summary>
    /// <param name="http">Talks to the coordinator (its <see cref="HttpClient.BaseAddress"/> is the coordinator's URL).</param>
    /// <param name="apiKey">The admin API key.</param>
    public TwoPCAdminClient(HttpClient http, string apiKey)
    {
        ArgumentNullException.ThrowIfNull(http);
        ArgumentNullException.ThrowIfNull(apiKey);
        Http = http;
        _apiKey = apiKey;
    }

    /// <summary>The <see cref="HttpClient"/> talking to the coordinator.</summary>
    public HttpClient Http { get; }

    /// <summary>The heuristic outcomes on record, oldest first (<c>GET /admin/heuristics</c>).</summary>
    /// <param name="cancellationToken">Cancels the request.</param>
    /// <exception cref="TwoPCApiException">The coordinator answered with an error (401: wrong or missing key).</exception>
    public Task<IReadOnlyList<HeuristicDto>> ListHeuristicsAsync(CancellationToken cancellationToken = default) =>
        SendAsync<IReadOnlyList<HeuristicDto>>(HttpMethod.Get, "admin/heuristics", null, cancellationToken);

    /// <summary>
    /// The branches waiting in doubt, oldest first (<c>GET /admin/in-doubt</c>): those a commit decision's phase 2
    /// is still retrying, and those the last recovery pass left alone (another node's, too young, heuristic, failed).
    /// </summary>
    /// <param name="cancellationToken">Cancels the request.</param>
    /// <exception cref="TwoPCApiException">The coordinator answered with an error (401: wrong or missing key).</exception>
    public Task<IReadOnlyList<InDoubtBranchDto>> ListInDoubtAsync(CancellationToken cancellationToken = default) =>
        SendAsync<IReadOnlyList<InDoubtBranchDto>>(HttpMethod.Get, "admin/in-doubt", null, cancellationToken);

    /// <summary>
    /// What the coordinator knows of transaction <paramref name="id"/> (<c>GET /transactions/{id}</c>): its state,
    /// its branches while it is live, its outcome once known. <c>Unknown</c> means no record (presumed abort).
    /// </summary>
    /// <param name="id">The global transaction id.</param>
    /// <param name="cancellationToken">Cancels the request.</param>
    /// <exception cref="TwoPCApiException">400: <paramref name="id"/> is malformed.</exception>
    public Task<TransactionStatusDto> GetTransactionAsync(string id, CancellationToken cancellationToken = default) =>
        SendAsync<TransactionStatusDto>(HttpMethod.Get, "transactions/" + Escape(id), null, cancellationToken);

    /// <summary>
    /// Forces branch <paramref name="xid"/> of <paramref name="resourceManager"/> to commit
    /// (<c>POST /admin/branches/{xid}/commit</c>). The coordinator refuses (409) when that would contradict what it
    /// knows: the transaction is live there or known rolled back, or it has no record of a transaction of its own
    /// and <paramref name="overridePresumedAbort"/> is not set.
    /// </summary>
    /// <param name="xid">The branch's XID.</param>
    /// <param name="resourceManager">The registered name of the branch's resource manager.</param>
    /// <param name="overridePresumedAbort">Commit even though the coordinator has no record of the transaction (it presumes it aborted).</param>
    /// <param name="cancellationToken">Cancels the wait (the coordinator still finishes the call it started).</param>
    /// <returns>What the resource reports became of the branch.</returns>
    /// <exception cref="TwoPCApiException">400 malformed, 404 unknown resource manager, 409 refused, 502 the resource failed.</exception>
    public Task<ForcedBranchDto> ForceCommitAsync(string xid, string resourceManager, bool overridePresumedAbort = false, CancellationToken cancellationToken = default) =>
        SendAsync<ForcedBranchDto>(HttpMethod.Post, "admin/branches/" + Escape(xid) + "/commit", new ForceBranchRequest(resourceManager, overridePresumedAbort), cancellationToken);

    /// <summary>
    /// Forces branch <paramref name="xid"/> of <paramref name="resourceManager"/> to roll back
    /// (<c>POST /admin/branches/{xid}/rollback</c>). The coordinator refuses (409) when the transaction has a commit
    /// decision on record there (logged, committing or committed) or is still live.
    /// </summary>
    /// <param name="xid">The branch's XID.</param>
    /// <param name="resourceManager">The registered name of the branch's resource manager.</param>
    /// <param name="cancellationToken">Cancels the wait (the coordinator still finishes the call it started).</param>
    /// <returns>What the resource reports became of the branch.</returns>
    /// <exception cref="TwoPCApiException">400 malformed, 404 unknown resource manager, 409 refused, 502 the resource failed.</exception>
    public Task<ForcedBranchDto> ForceRollbackAsync(string xid, string resourceManager, CancellationToken cancellationToken = default) =>
        SendAsync<ForcedBranchDto>(HttpMethod.Post, "admin/branches/" + Escape(xid) + "/rollback", new ForceBranchRequest(resourceManager), cancellationToken);

    /// <summary>Forgets the heuristic outcome of transaction <paramref name="id"/> once an operator has dealt with it (<c>POST /admin/transactions/{id}/forget</c>).</summary>
    /// <param name="id">The global transaction id.</param>
    /// <param name="cancellationToken">Cancels the request.</param>
    /// <exception cref="TwoPCApiException">404: no heuristic outcome is on record for <paramref name="id"/>.</exception>
    public async Task ForgetAsync(string id, CancellationToken cancellationToken = default)
    {
        using var request = Request(HttpMethod.Post, "admin/transactions/" + Escape(id) + "/forget", null);
        using var response = await Http.SendAsync(request, cancellationToken).ConfigureAwait(false);
        await TwoPCApiException.ThrowIfFailedAsync(response, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Runs a recovery pass now and returns its report (<c>POST /admin/recover</c>).</summary>
    /// <param name="cancellationToken">Cancels the request.</param>
    /// <exception cref="TwoPCApiException">The coordinator answered with an error.</exception>
    public Task<RecoveryReportDto> RecoverAsync(CancellationToken cancellationToken = default) =>
        SendAsync<RecoveryReportDto>(HttpMethod.Post, "admin/recover", null, cancellationToken);

    private async Task<T> SendAsync<T>(HttpMethod method, string path, object? body, CancellationToken cancellationToken)
    {
        using var request = Request(method, path, body);
        using var response = await Http.SendAsync(request, cancellationToken).ConfigureAwait(false);
        return await TwoPCClient.ReadAsync<T>(response, cancellationToken).ConfigureAwait(false);
    }

    private HttpRequestMessage Request(HttpMethod method, string path, object? body)
    {
        var request = new HttpRequestMessage(method, path);
        request.Headers.TryAddWithoutValidation(ApiKeyHeader, _apiKey);
        if (body is not null)
        {
            request.Content = JsonContent.Create(body, body.GetType(), options: TwoPCJson.Options);
        }

        return request;
    }

    private static string Escape(string value)
    {
        ArgumentException.ThrowIfNullOrEmpty(value);
        return Uri.EscapeDataString(value);
    }
}
