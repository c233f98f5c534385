using System.Collections.Concurrent;
using System.Net;
using System.Text;
using System.Text.Json;
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
/// The callback URL of every branch registered since this process started is remembered until the participant
/// has answered the branch's outcome, so an operator's forced commit or rollback of a branch with no recovery data
/// (no logged decision) still reaches it; with no URL at all, a forced call fails rather than guess.
/// A participant configured under <c>Coordinator:Participants</c> is always called at its configured callback URL (a
/// URL in a logged decision or a registration is not used for it). Redirects are never followed (a 3xx is the
/// participant's error), at most <see cref="CoordinatorLimitsOptions.MaxParticipantAnswerBytes"/> of an answer is read, and errors
/// name the participant, never the target's address or status (those are logged).
/// </remarks>
/// <param name="name">The participant's resource manager name.</param>
/// <param name="httpClientFactory">Creates the participant client (<see cref="CoordinatorServer.ParticipantClientName"/>).</param>
/// <param name="configuredCallbackUrl">The callback URL configured for the participant, or null for an unconfigured one.</param>
public sealed class HttpParticipantResourceManager(string name, IHttpClientFactory httpClientFactory, Uri? configuredCallbackUrl = null) : IResourceManager
{
    private readonly ConcurrentDictionary<Xid, Uri> _callbackUrls = new();

    // Branches registered and not yet asked for their vote: a participant may report its Yes vote for one of these early.
    private readonly ConcurrentDictionary<Xid, HttpParticipantBranch> _awaitingVote = new();

    /// <inheritdoc />
    public string Name { get; } = name;

    /// <summary>The callback URL configured for this participant (<c>Coordinator:Participants:{name}:CallbackUrl</c>), or null.</summary>
    public Uri? ConfiguredCallbackUrl { get; } = configuredCallbackUrl;

    /// <summary>
    /// <see langword="false"/>: a remote participant's commit is a callback that can fail or time out after the participant
    /// committed, and must be re-driven from the callback URL in the branch's recovery data. So a remote branch is always
    /// prepared first and its commit decision logged, even when it is the only branch; there is no one-phase call.
    /// </summary>
    public bool CommitsAtomically => false;

    /// <summary>How many branches registered since this process started have a callback URL remembered: those whose outcome the participant has not answered yet.</summary>
    public int RememberedCallbackUrls => _callbackUrls.Count;

    /// <inheritdoc />
    /// <exception cref="InvalidOperationException">No callback URL is known for the branch (not in its recovery data, not registered with this process).</exception>
    public ValueTask<BranchOutcome> CommitAsync(Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken) =>
        FinishAsync(CallbackUrlFor(xid, recoveryData, "commit"), "commit", xid, cancellationToken, ParticipantDataOf(recoveryData));

    /// <inheritdoc />
    /// <exception cref="InvalidOperationException">No callback URL is known for the branch: it cannot be reached, so nothing is reported rolled back.</exception>
    public ValueTask<BranchOutcome> RollbackAsync(Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken) =>
        FinishAsync(CallbackUrlFor(xid, recoveryData, "roll back"), "rollback", xid, cancellationToken, ParticipantDataOf(recoveryData));

    /// <inheritdoc />
    public ValueTask<IReadOnlyCollection<InDoubtBranch>> RecoverAsync(CancellationToken cancellationToken) =>
        ValueTask.FromResult<IReadOnlyCollection<InDoubtBranch>>([]);

    /// <inheritdoc />
    /// <remarks>Not sent to the participant; the coordinator only stops remembering the branch's callback URL.</remarks>
    public ValueTask ForgetAsync(Xid xid, CancellationToken cancellationToken)
    {
        Finished(xid);
        return ValueTask.CompletedTask;
    }

    /// <summary>Creates the branch that <c>GlobalTransaction.Enlist</c> adds for a participant at <paramref name="callbackUrl"/>.</summary>
    public ITransactionBranch CreateBranch(Xid xid, Uri callbackUrl)
    {
        ArgumentNullException.ThrowIfNull(xid);
        ArgumentNullException.ThrowIfNull(callbackUrl);
        callbackUrl = ConfiguredCallbackUrl ?? callbackUrl;
        _callbackUrls[xid] = callbackUrl;
        var branch = new HttpParticipantBranch(this, xid, callbackUrl);
        _awaitingVote[xid] = branch;
        return branch;
    }

    /// <summary>
    /// The participant reports that branch <paramref name="xid"/> prepared (<c>POST /transactions/{id}/branches/{xid}/prepared</c>,
    /// authenticated like its registration): a Yes vote for that branch only, with <paramref name="participantData"/> as the
    /// recovery data it would have answered <c>/prepare</c> with. Phase 1 then takes this vote and sends the branch no
    /// prepare callback; its recovery data (callback URL and participant data) is logged with the decision exactly as
    /// a vote answered by callback is.
    /// </summary>
    /// <returns><see langword="false"/> when no branch <paramref name="xid"/> of this participant is waiting for its vote
    /// (unknown, or phase 1 already asked it, or it was rolled back).</returns>
    internal bool TryReportPrepared(Xid xid, string? participantData)
    {
        if (!_awaitingVote.TryGetValue(xid, out var branch))
        {
            return false;
        }

        branch.Reported = Vote.Yes(EncodeRecoveryData(branch.CallbackUrl, participantData));
        return _awaitingVote.ContainsKey(xid);
    }

    /// <summary>Whether <paramref name="data"/> is recovery data a participant may answer with (base64, at most the contract's length).</summary>
    internal static bool IsValidRecoveryData(string data) => data.Length <= PrepareCallbackResponse.MaxRecoveryDataLength && IsBase64(data);

    /// <summary>Asks the participant to prepare; 409 is a No vote, 425 is asked again until the token is cancelled.</summary>
    internal async ValueTask<Vote> PrepareAsync(Uri callbackUrl, Xid xid, CancellationToken cancellationToken)
    {
        while (true)
        {
            using var response = await PostAsync(callbackUrl, "prepare", xid, cancellationToken).ConfigureAwait(false);
            switch (response.StatusCode)
            {
                case HttpStatusCode.OK:
                    var answer = await ReadAnswerAsync<PrepareCallbackResponse>(response, "prepare", xid, cancellationToken).ConfigureAwait(false);
                    switch (answer.Vote)
                    {
                        case CallbackVote.Yes:
                            if (answer.RecoveryData is { } data && !IsValidRecoveryData(data))
                            {
                                throw new InvalidOperationException($"'{Name}' answered prepare of {xid} with recovery data that is not base64 of at most {PrepareCallbackResponse.MaxRecoveryDataLength} characters.");
                            }

                            return Vote.Yes(EncodeRecoveryData(callbackUrl, answer.RecoveryData));
                        case CallbackVote.ReadOnly:
                            Finished(xid); // no phase 2 follows
                            return Vote.ReadOnly;
                        case CallbackVote.No:
                            Finished(xid);
                            return Vote.No(answer.Reason ?? $"'{Name}' voted no");
                        default:
                            throw new InvalidOperationException($"'{Name}' answered prepare of {xid} with the unknown vote {answer.Vote}.");
                    }

                case HttpStatusCode.Conflict:
                    Finished(xid);
                    return Vote.No($"'{Name}' failed to prepare");
                case (HttpStatusCode)425: // Too Early: still in progress
                    await Task.Delay(TimeSpan.FromMilliseconds(100), cancellationToken).ConfigureAwait(false);
                    continue;
                default:
                    throw ErrorAnswer(response, "prepare", xid);
            }
        }
    }

    internal async ValueTask<BranchOutcome> FinishAsync(Uri callbackUrl, string action, Xid xid, CancellationToken cancellationToken, string? participantData = null)
    {
        using var response = await PostAsync(callbackUrl, action, xid, cancellationToken, participantData).ConfigureAwait(false);
        if (response.StatusCode != HttpStatusCode.OK)
        {
            throw ErrorAnswer(response, action, xid);
        }

        var answer = await ReadAnswerAsync<FinishCallbackResponse>(response, action, xid, cancellationToken).ConfigureAwait(false);
        var outcome = answer.Outcome switch
        {
            CallbackOutcome.Committed => BranchOutcome.Committed,
            CallbackOutcome.RolledBack => BranchOutcome.RolledBack,
            CallbackOutcome.Mixed => BranchOutcome.Mixed,
            CallbackOutcome.Unknown => BranchOutcome.Unknown,
            _ => throw new InvalidOperationException($"'{Name}' answered {action} of {xid} with the unknown outcome {answer.Outcome}."),
        };

        if (outcome is BranchOutcome.Committed or BranchOutcome.RolledBack)
        {
            Finished(xid); // the participant answered for the branch: nothing left to reach it for
        }

        return outcome;
    }

    private void Finished(Xid xid) => _callbackUrls.TryRemove(xid, out _);

    // The status stays out of the message (it becomes an outcome reason the API returns); the call handler logged it.
    private HttpRequestException ErrorAnswer(HttpResponseMessage response, string action, Xid xid) =>
        (int)response.StatusCode is >= 300 and < 400
            ? new HttpRequestException($"'{Name}' answered {action} of {xid} with a redirect; redirects are not followed (details in the coordinator's log).", null, response.StatusCode)
            : new HttpRequestException($"'{Name}' failed to answer {action} of {xid} (an error answer; details in the coordinator's log).", null, response.StatusCode);

    // An answer that is not the contract (no body, a vote or outcome the contract does not name, a missing field) is
    // the participant's error, reported as such: the coordinator's retries ask again.
    private async Task<T> ReadAnswerAsync<T>(HttpResponseMessage response, string action, Xid xid, CancellationToken cancellationToken)
        where T : class
    {
        var body = await ReadBoundedAsync(response.Content, cancellationToken).ConfigureAwait(false)
            ?? throw new InvalidOperationException($"'{Name}' answered {action} of {xid} with more than {CoordinatorLimitsOptions.MaxParticipantAnswerBytes / 1024} KiB; it was not read.");
        try
        {
            return JsonSerializer.Deserialize<T>(body, TwoPCJson.Options)
                ?? throw new InvalidOperationException($"'{Name}' answered {action} of {xid} with an empty body.");
        }
        catch (JsonException ex)
        {
            throw new InvalidOperationException($"'{Name}' answered {action} of {xid} with an answer outside the callback contract: {TransactionIdFormatException.Sanitize(ex.Message)}", ex);
        }
    }

    // At most MaxAnswerBytes of the answer, or null when it is longer (declared or read): the rest is never read.
    private static async Task<byte[]?> ReadBoundedAsync(HttpContent content, CancellationToken cancellationToken)
    {
        if (content.Headers.ContentLength > CoordinatorLimitsOptions.MaxParticipantAnswerBytes)
        {
            return null;
        }

        var stream = await content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(CoordinatorLimitsOptions.MaxParticipantAnswerBytes + 1);
        try
        {
            await using (stream.ConfigureAwait(false))
            {
                var filled = 0;
                int read;
                while (filled <= CoordinatorLimitsOptions.MaxParticipantAnswerBytes
                    && (read = await stream.ReadAsync(buffer.AsMemory(filled, CoordinatorLimitsOptions.MaxParticipantAnswerBytes + 1 - filled), cancellationToken).ConfigureAwait(false)) > 0)
                {
                    filled += read;
                }

                return filled > CoordinatorLimitsOptions.MaxParticipantAnswerBytes ? null : buffer[..filled];
            }
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    // The configured callback URL for a configured participant; else the recovery data (the callback URL the branch voted Yes with) when there is some; else the URL it registered with
    // while this process ran. Without either the participant cannot be reached: say so, never presume an outcome.
    private Uri CallbackUrlFor(Xid xid, ReadOnlyMemory<byte> recoveryData, string verb)
    {
        if (ConfiguredCallbackUrl is { } configured)
        {
            return configured;
        }

        if (!recoveryData.IsEmpty)
        {
            return CallbackUrlOf(recoveryData);
        }

        return _callbackUrls.TryGetValue(xid, out var registered)
            ? registered
            : throw new InvalidOperationException($"Cannot {verb} branch {xid} of '{Name}': no callback URL is known for it (it is in no logged decision or heuristic, and was not registered since this coordinator started). A participant's own recovery settles a branch of its coordinator's node by asking GET /transactions/{{id}}; otherwise call the participant's {(verb == "commit" ? "commit" : "rollback")} callback yourself.");
    }

    private async Task<HttpResponseMessage> PostAsync(Uri callbackUrl, string action, Xid xid, CancellationToken cancellationToken, string? participantData = null)
    {
        using var client = httpClientFactory.CreateClient(CoordinatorServer.ParticipantClientName);
        var target = new Uri(callbackUrl.AbsoluteUri.TrimEnd('/') + "/" + action);
        using var request = new HttpRequestMessage(HttpMethod.Post, target)
        {
            // Bytes, not a streamed JsonContent: the signature covers exactly the body sent.
            Content = new ByteArrayContent(JsonSerializer.SerializeToUtf8Bytes(new CallbackRequest(xid.ToString(), participantData), TwoPCJson.Options)),
        };
        request.Content.Headers.ContentType = new("application/json") { CharSet = "utf-8" };
        request.Options.Set(ParticipantCallHandler.Participant, Name);

        // Headers only: the body is read (at most MaxAnswerBytes of it) by the caller, never buffered whole.
        return await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
    }

    // A remote branch's recovery data: the callback URL (UTF-8), then, when the participant answered prepare with
    // recovery data of its own, a line feed and that data in base64. An absolute URI never contains a raw line feed,
    // and a decision logged before the participant data existed is the URL alone.
    private static byte[] EncodeRecoveryData(Uri callbackUrl, string? participantData) =>
        Encoding.UTF8.GetBytes(participantData is { Length: > 0 } ? callbackUrl.AbsoluteUri + "\n" + participantData : callbackUrl.AbsoluteUri);

    private static Uri CallbackUrlOf(ReadOnlyMemory<byte> recoveryData)
    {
        var text = Encoding.UTF8.GetString(recoveryData.Span);
        var newline = text.IndexOf('\n', StringComparison.Ordinal);
        return new(newline < 0 ? text : text[..newline], UriKind.Absolute);
    }

    private static string? ParticipantDataOf(ReadOnlyMemory<byte> recoveryData)
    {
        var newline = recoveryData.Span.IndexOf((byte)'\n');
        return newline < 0 ? null : Encoding.UTF8.GetString(recoveryData.Span[(newline + 1)..]);
    }

    private static bool IsBase64(string text)
    {
        Span<byte> buffer = stackalloc byte[PrepareCallbackResponse.MaxRecoveryDataLength];
        return Convert.TryFromBase64String(text, buffer, out _);
    }

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

    private sealed class HttpParticipantBranch(HttpParticipantResourceManager resourceManager, Xid xid, Uri callbackUrl) : ITransactionBranch
    {
        private Vote? _reported;

        public IResourceManager ResourceManager => resourceManager;

        public Uri CallbackUrl => callbackUrl;

        /// <summary>The Yes vote the participant reported before phase 1 asked (null: not reported; ask by callback).</summary>
        public Vote? Reported
        {
            get => Volatile.Read(ref _reported);
            set => Volatile.Write(ref _reported, value);
        }

        // A vote reported early is taken as it is; otherwise (an older participant, or a report that did not arrive in time)
        // the prepare callback asks. Either way the branch stops waiting for a report: a late one changes nothing.
        public async ValueTask<Vote> PrepareAsync(CancellationToken cancellationToken)
        {
            resourceManager._awaitingVote.TryRemove(xid, out _);
            return Reported ?? await resourceManager.PrepareAsync(callbackUrl, xid, cancellationToken).ConfigureAwait(false);
        }

        // The contract has no one-phase call, and the coordinator never asks for one: CommitsAtomically is false, so
        // even a lone remote branch is prepared, its decision logged, and committed by callback until it answers.
        public ValueTask<BranchOutcome> CommitOnePhaseAsync(CancellationToken cancellationToken) =>
            throw new NotSupportedException($"Remote branch {xid} of '{resourceManager.Name}' cannot commit in one phase: a remote participant is always prepared and committed by callback.");

        public ValueTask<BranchOutcome> RollbackAsync(CancellationToken cancellationToken)
        {
            resourceManager._awaitingVote.TryRemove(xid, out _);
            return resourceManager.FinishAsync(callbackUrl, "rollback", xid, cancellationToken);
        }
    }
}
