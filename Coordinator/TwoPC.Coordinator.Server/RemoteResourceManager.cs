using System.Net;
using System.Net.Http.Json;
using System.Text;
using TwoPC.Client;
using TwoPC.Participants;
using TwoPC.Transactions;

namespace TwoPC.Coordinator.Server;

/// <summary>
/// A participant in another process, reached over HTTP (see README.md for the contract): the coordinator
/// POSTs <c>{callbackUrl}/prepare</c>, <c>/commit</c> and <c>/rollback</c> with <c>{ "xid": "..." }</c>.
/// A branch's recovery data is its callback URL (UTF-8), so phase 2 reaches it after a restart.
/// </summary>
/// <remarks>
/// Transport errors, 5xx, 425 (still in progress) and any unexpected answer throw: the coordinator's
/// retry pipeline drives phase 2 until the participant answers. <see cref="RecoverAsync"/> returns
/// nothing: a remote participant runs its own recovery by asking <c>GET /transactions/{id}</c>.
/// </remarks>
public sealed class RemoteResourceManager(string name, IHttpClientFactory httpClientFactory) : IResourceManager
{
    /// <inheritdoc />
    public string Name { get; } = name;

    /// <inheritdoc />
    public ValueTask<BranchOutcome> CommitAsync(Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken) =>
        recoveryData.IsEmpty
            ? throw new InvalidOperationException($"Branch {xid} of '{Name}' has no callback URL in its recovery data.")
            : FinishAsync(CallbackUrlOf(recoveryData), "commit", xid, cancellationToken);

    /// <inheritdoc />
    public ValueTask<BranchOutcome> RollbackAsync(Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken) =>
        recoveryData.IsEmpty
            ? ValueTask.FromResult(BranchOutcome.RolledBack) // never prepared here: the participant presumes abort by itself
            : FinishAsync(CallbackUrlOf(recoveryData), "rollback", xid, cancellationToken);

    /// <inheritdoc />
    public ValueTask<IReadOnlyCollection<InDoubtBranch>> RecoverAsync(CancellationToken cancellationToken) =>
        ValueTask.FromResult<IReadOnlyCollection<InDoubtBranch>>([]);

    /// <inheritdoc />
    public ValueTask ForgetAsync(Xid xid, CancellationToken cancellationToken) => ValueTask.CompletedTask;

    /// <summary>Creates the branch that <c>GlobalTransaction.Enlist</c> adds for a participant at <paramref name="callbackUrl"/>.</summary>
    public ITransactionBranch CreateBranch(Xid xid, Uri callbackUrl) => new RemoteBranch(this, xid, callbackUrl);

    /// <summary>Asks the participant to prepare; 409 is a No vote, 425 is asked again until the token is cancelled.</summary>
    internal async ValueTask<Vote> PrepareAsync(Uri callbackUrl, Xid xid, CancellationToken cancellationToken)
    {
        while (true)
        {
            using var response = await PostAsync(callbackUrl, "prepare", xid, cancellationToken).ConfigureAwait(false);
            switch (response.StatusCode)
            {
                case HttpStatusCode.OK:
                    var answer = await response.Content.ReadFromJsonAsync<PrepareCallbackResponse>(TwoPCJson.Options, cancellationToken).ConfigureAwait(false)
                        ?? throw new InvalidOperationException($"'{Name}' answered prepare of {xid} with an empty body.");
                    return answer.Vote switch
                    {
                        PrepareCallbackResponse.Yes => Vote.Yes(Encoding.UTF8.GetBytes(callbackUrl.AbsoluteUri)),
                        PrepareCallbackResponse.ReadOnly => Vote.ReadOnly,
                        PrepareCallbackResponse.No => Vote.No(answer.Reason ?? $"'{Name}' voted no"),
                        _ => throw new InvalidOperationException($"'{Name}' answered prepare of {xid} with the unknown vote {TransactionIdFormatException.Sanitize(answer.Vote ?? string.Empty)}."),
                    };
                case HttpStatusCode.Conflict:
                    return Vote.No($"'{Name}' failed to prepare (409)");
                case (HttpStatusCode)425: // Too Early: still in progress
                    await Task.Delay(TimeSpan.FromMilliseconds(100), cancellationToken).ConfigureAwait(false);
                    continue;
                default:
                    throw new HttpRequestException($"'{Name}' answered prepare of {xid} with {(int)response.StatusCode}.", null, response.StatusCode);
            }
        }
    }

    internal async ValueTask<BranchOutcome> FinishAsync(Uri callbackUrl, string action, Xid xid, CancellationToken cancellationToken)
    {
        using var response = await PostAsync(callbackUrl, action, xid, cancellationToken).ConfigureAwait(false);
        if (response.StatusCode != HttpStatusCode.OK)
        {
            throw new HttpRequestException($"'{Name}' answered {action} of {xid} with {(int)response.StatusCode}.", null, response.StatusCode);
        }

        var answer = await response.Content.ReadFromJsonAsync<FinishCallbackResponse>(TwoPCJson.Options, cancellationToken).ConfigureAwait(false)
            ?? throw new InvalidOperationException($"'{Name}' answered {action} of {xid} with an empty body.");
        return answer.Outcome is { Length: > 0 } text && char.IsLetter(text[0]) && Enum.TryParse<BranchOutcome>(text, ignoreCase: true, out var outcome)
            ? outcome
            : throw new InvalidOperationException($"'{Name}' answered {action} of {xid} with the unknown outcome {TransactionIdFormatException.Sanitize(answer.Outcome ?? string.Empty)}.");
    }

    private async Task<HttpResponseMessage> PostAsync(Uri callbackUrl, string action, Xid xid, CancellationToken cancellationToken)
    {
        using var client = httpClientFactory.CreateClient(CoordinatorServer.ParticipantClientName);
        var target = new Uri(callbackUrl.AbsoluteUri.TrimEnd('/') + "/" + action);
        return await client.PostAsJsonAsync(target, new CallbackRequest(xid.ToString()), TwoPCJson.Options, cancellationToken).ConfigureAwait(false);
    }

    private static Uri CallbackUrlOf(ReadOnlyMemory<byte> recoveryData) => new(Encoding.UTF8.GetString(recoveryData.Span), UriKind.Absolute);

    /// <summary>Whether <paramref name="text"/> is an absolute http(s) URL without query or fragment.</summary>
    public static bool TryParseCallbackUrl(string? text, out Uri url)
    {
        url = null!;
        if (string.IsNullOrWhiteSpace(text) || text.Length > 2048
            || !Uri.TryCreate(text, UriKind.Absolute, out var parsed)
            || (parsed.Scheme != Uri.UriSchemeHttp && parsed.Scheme != Uri.UriSchemeHttps)
            || !string.IsNullOrEmpty(parsed.Query) || !string.IsNullOrEmpty(parsed.Fragment) || !string.IsNullOrEmpty(parsed.UserInfo))
        {
            return false;
        }

        url = parsed;
        return true;
    }

    private sealed class RemoteBranch(RemoteResourceManager resourceManager, Xid xid, Uri callbackUrl) : ITransactionBranch
    {
        public IResourceManager ResourceManager => resourceManager;

        public ValueTask<Vote> PrepareAsync(CancellationToken cancellationToken) => resourceManager.PrepareAsync(callbackUrl, xid, cancellationToken);

        // The contract has no one-phase call: prepare, then commit on a Yes (a crash between leaves the
        // participant prepared without a logged decision, so it learns "not committed" and rolls back).
        public async ValueTask<BranchOutcome> CommitOnePhaseAsync(CancellationToken cancellationToken)
        {
            var vote = await PrepareAsync(cancellationToken).ConfigureAwait(false);
            return vote.Kind switch
            {
                VoteKind.Yes => await resourceManager.FinishAsync(callbackUrl, "commit", xid, cancellationToken).ConfigureAwait(false),
                VoteKind.ReadOnly => BranchOutcome.Committed,
                _ => BranchOutcome.RolledBack,
            };
        }

        public ValueTask<BranchOutcome> RollbackAsync(CancellationToken cancellationToken) => resourceManager.FinishAsync(callbackUrl, "rollback", xid, cancellationToken);
    }
}
