using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using TwoPC.Client;
using TwoPC.Participants;
using TwoPC.Transactions;

namespace TwoPC.Participants.Remote;

/// <summary>Maps the coordinator's callbacks and turns request handlers into branches.</summary>
public static class RemoteParticipantEndpoints
{
    /// <summary>The largest callback body read (a callback is an XID and at most 4096 characters of recovery data).</summary>
    internal const int MaxCallbackBodyBytes = 16 * 1024;

    internal const string BranchKey = "TwoPC.RemoteBranch";
    internal const string RefusalKey = "TwoPC.RemoteBranch.Refusal";

    /// <summary>
    /// Maps <c>{prefix}/prepare</c>, <c>{prefix}/commit</c> and <c>{prefix}/rollback</c>, the callbacks the
    /// coordinator POSTs <c>{ "xid": "..." }</c> to (see the coordinator's README for the contract). The
    /// options' <c>CallbackUrl</c> must point here. Put them behind your service-to-service authentication.
    /// </summary>
    public static RouteGroupBuilder MapTwoPCParticipant(this IEndpointRouteBuilder endpoints, string prefix = "/twopc")
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        var group = endpoints.MapGroup(prefix).WithTags("TwoPC participant");
        group.AddEndpointFilter(async (context, next) =>
        {
            // A prepare, commit or rollback from anyone but the coordinator would break atomicity: only a call signed
            // under this participant's own key (and name) within the clock-skew window is served.
            var participant = context.HttpContext.RequestServices.GetRequiredService<RemoteParticipant>();
            return await VerifyCallbackAsync(context.HttpContext, participant).ConfigureAwait(false) ?? await next(context).ConfigureAwait(false);
        });
        group.MapPost("/prepare", (HttpRequest request, RemoteParticipant participant, CancellationToken ct) =>
            WithXidAsync(request, (xid, _) => participant.OnPrepareAsync(xid, ct)));
        group.MapPost("/commit", (HttpRequest request, RemoteParticipant participant, CancellationToken ct) =>
            WithXidAsync(request, (xid, data) => participant.OnCommitAsync(xid, data, ct)));
        group.MapPost("/rollback", (HttpRequest request, RemoteParticipant participant, CancellationToken ct) =>
            WithXidAsync(request, (xid, data) => participant.OnRollbackAsync(xid, data, ct)));
        return group;
    }

    /// <summary>
    /// Makes the endpoint a branch of the global transaction named by its <see cref="TwoPCHeaders.TransactionId"/>
    /// header: the handler's <see cref="RemoteBranch"/> parameter joins it before the handler runs;
    /// when the handler answers 2xx the branch is prepared (a No vote turns the answer into 409), otherwise it
    /// is rolled back. A request that cannot join gets 400/404/409/503 problem details and the handler never runs.
    /// </summary>
    public static TBuilder AsTwoPCBranch<TBuilder>(this TBuilder builder)
        where TBuilder : IEndpointConventionBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.WithMetadata(new TwoPCBranchEndpoint());
        builder.AddEndpointFilter(async (context, next) =>
        {
            // Binding the RemoteBranch parameter joined the transaction (parameters bind before filters run).
            var http = context.HttpContext;
            if (http.Items.TryGetValue(RefusalKey, out var refusal))
            {
                return ((RemoteParticipantException)refusal!).ToProblem();
            }

            if (!http.Items.TryGetValue(BranchKey, out var bound) || bound is not RemoteBranch branch)
            {
                throw new InvalidOperationException("An endpoint marked .AsTwoPCBranch() needs a RemoteBranch parameter.");
            }

            var participant = http.RequestServices.GetRequiredService<RemoteParticipant>();
            await using (branch.ConfigureAwait(false))
            {
                object? result;
                try
                {
                    result = await next(context).ConfigureAwait(false);
                }
                catch (Exception ex)
                {
                    // The vote carries the handler's error to the coordinator's outcome (disposing rolls the work back).
                    branch.Abandon($"the branch's request failed: {ex.GetType().Name}: {ex.Message}");
                    throw;
                }

                var status = result is IStatusCodeHttpResult { StatusCode: { } code } ? code : StatusCodes.Status200OK;
                if (status is < 200 or > 299)
                {
                    participant.Logger.WorkFailed(branch.Xid, status);
                    branch.Abandon(FailedAnswer(status, result));
                    return result; // disposing the branch rolls it back
                }

                // Not bound to the request's token: once the work is done, a caller gone away must not leave the
                // prepare half-done. A branch the coordinator already rolled back (its deadline passed) has voted No.
                var vote = branch.Vote ?? await branch.PrepareAsync(CancellationToken.None).ConfigureAwait(false);
                if (vote.Kind == VoteKind.Yes && branch.PreparedVote is { } signed && !http.Response.HasStarted)
                {
                    http.Response.Headers[TwoPCHeaders.PreparedVote] = signed; // relayed by the caller with its commit
                }

                return vote.Kind == VoteKind.No
                    ? Results.Problem(statusCode: StatusCodes.Status409Conflict, title: "Branch could not prepare", detail: vote.Reason)
                    : result;
            }
        });
        return builder;
    }

    // Why a branch whose handler answered an error votes No: the status and what the handler said (a problem's detail or
    // title, or its answer's value as JSON). Vote.No cuts it to ReasonText.MaxLength.
    private static string FailedAnswer(int status, object? result)
    {
        var said = result switch
        {
            ProblemHttpResult problem => problem.ProblemDetails.Detail ?? problem.ProblemDetails.Title,
            IValueHttpResult { Value: string text } => text,
            IValueHttpResult { Value: { } value } => Json(value),
            _ => null,
        };
        return $"the branch's request answered {status}" + (string.IsNullOrEmpty(said) ? string.Empty : ": " + said);

        static string? Json(object value)
        {
            try
            {
                return JsonSerializer.Serialize(value, value.GetType(), TwoPCJson.Options);
            }
            catch (Exception ex) when (ex is NotSupportedException or InvalidOperationException or JsonException)
            {
                return null; // not serializable: the status says enough
            }
        }
    }

    // Null when the call may be served; else the 401/413 problem to answer. The body is buffered so the handler reads it again.
    private static async Task<IResult?> VerifyCallbackAsync(HttpContext http, RemoteParticipant participant)
    {
        var options = participant.Options;
        if (string.IsNullOrEmpty(options.Key))
        {
            return null; // AllowUnauthenticatedCallbacks (development): warned at start
        }

        var request = http.Request;
        var path = (request.PathBase + request.Path).ToUriComponent() + request.QueryString.ToUriComponent();
        if (request.ContentLength > MaxCallbackBodyBytes)
        {
            return Results.Problem(statusCode: StatusCodes.Status413PayloadTooLarge, title: "Callback too large", detail: $"A callback body is at most {MaxCallbackBodyBytes} bytes.");
        }

        request.EnableBuffering(MaxCallbackBodyBytes);
        var body = new byte[MaxCallbackBodyBytes + 1];
        var length = 0;
        int read;
        while (length < body.Length && (read = await request.Body.ReadAsync(body.AsMemory(length), http.RequestAborted).ConfigureAwait(false)) > 0)
        {
            length += read;
        }

        if (length > MaxCallbackBodyBytes)
        {
            return Results.Problem(statusCode: StatusCodes.Status413PayloadTooLarge, title: "Callback too large", detail: $"A callback body is at most {MaxCallbackBodyBytes} bytes.");
        }

        request.Body.Position = 0;
        var keyId = RequestSignature.ParseKeyId(request.Headers[RequestSignature.KeyIdHeader].ToString());
        var verdict = keyId is null
            ? (request.Headers.ContainsKey(RequestSignature.KeyIdHeader) ? SignatureCheck.Malformed : SignatureCheck.Missing)
            : !string.Equals(keyId, options.Name, StringComparison.Ordinal)
                ? SignatureCheck.Invalid // signed for another participant: useless here
                : RequestSignature.Verify(keyId, options.Key, request.Method, path, request.Headers[RequestSignature.TimestampHeader].ToString(),
                    request.Headers[RequestSignature.SignatureHeader].ToString(), body.AsSpan(0, length), participant.Time.GetUtcNow(), options.CallbackClockSkew);
        if (verdict == SignatureCheck.Valid)
        {
            return null;
        }

        participant.Logger.CallbackRefused(TransactionIdFormatException.Sanitize(path), verdict.ToString(), keyId ?? "(none)");
        return Results.Problem(statusCode: StatusCodes.Status401Unauthorized, title: "Unauthorized",
            detail: $"Callbacks must be signed by the coordinator under this participant's key ({RequestSignature.Scheme}, key id '{options.Name}'); this one's signature is {verdict}.");
    }

    private static async Task<IResult> WithXidAsync(HttpRequest request, Func<Xid, ReadOnlyMemory<byte>, Task<IResult>> action)
    {
        CallbackRequest? body;
        try
        {
            body = request.HasJsonContentType() ? await request.ReadFromJsonAsync<CallbackRequest>(TwoPCJson.Options, request.HttpContext.RequestAborted).ConfigureAwait(false) : null;
        }
        catch (JsonException)
        {
            body = null;
        }

        byte[] recoveryData = [];
        if (body?.RecoveryData is { } data && (data.Length > PrepareCallbackResponse.MaxRecoveryDataLength || !TryFromBase64(data, out recoveryData)))
        {
            return Results.Problem(statusCode: StatusCodes.Status400BadRequest, title: "Bad request", detail: $"\"recoveryData\" must be base64 of at most {PrepareCallbackResponse.MaxRecoveryDataLength} characters.");
        }

        return Xid.TryParse(body?.Xid, out var xid)
            ? await action(xid, recoveryData).ConfigureAwait(false)
            : Results.Problem(statusCode: StatusCodes.Status400BadRequest, title: "Bad request", detail: $"Send {{ \"xid\": \"...\" }} with a TwoPC XID; got {TransactionIdFormatException.Sanitize(body?.Xid ?? string.Empty)}.");
    }

    private static bool TryFromBase64(string text, out byte[] bytes)
    {
        var buffer = new byte[text.Length];
        if (Convert.TryFromBase64String(text, buffer, out var written))
        {
            bytes = buffer[..written];
            return true;
        }

        bytes = [];
        return false;
    }
}
