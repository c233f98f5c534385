using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;
using TwoPC.Client;

namespace TwoPC.Coordinator.Server.Security;

/// <summary>
/// A remote participant's call, signed with its own key (<see cref="RequestSignature"/>, what the participant SDK's
/// <see cref="RequestSigningHandler"/> sends): the key id must name a participant configured with a key
/// (<c>Coordinator:Participants:{name}:Key</c>), the signature must be that key's over this method, this exact request
/// target and this body, within the clock-skew window. The caller is then that participant.
/// </summary>
internal sealed class ParticipantSignatureAuthenticationHandler(
    IOptionsMonitor<ParticipantSignatureOptions> options,
    ILoggerFactory logger,
    UrlEncoder encoder,
    ParticipantDirectory participants)
    : AuthenticationHandler<ParticipantSignatureOptions>(options, logger, encoder)
{
    /// <summary>Whether the request carries a participant signature's headers.</summary>
    public static bool IsSigned(HttpRequest request) =>
        request.Headers.ContainsKey(RequestSignature.SignatureHeader) || request.Headers.ContainsKey(RequestSignature.KeyIdHeader);

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        if (!IsSigned(Request))
        {
            return AuthenticateResult.NoResult();
        }

        var headers = Request.Headers;
        var keyId = headers[RequestSignature.KeyIdHeader].Count == 1 ? RequestSignature.ParseKeyId(headers[RequestSignature.KeyIdHeader][0]) : null;
        if (keyId is null)
        {
            return Refuse(SignatureCheck.Malformed, "the key id is missing or not a participant name");
        }

        if (!participants.TryGet(keyId, out var participant) || participant.Key is null)
        {
            return Refuse(SignatureCheck.Invalid, "the key id is not a participant configured with a key");
        }

        var body = await ReadBodyAsync().ConfigureAwait(false);
        if (body is null)
        {
            return Refuse(SignatureCheck.Invalid, $"the body is larger than the {Options.MaxBodyBytes} bytes a participant's call may have");
        }

        // The exact request target as received: what the signer's HttpClient sent (Request.Path is decoded).
        var target = Context.Features.Get<IHttpRequestFeature>()?.RawTarget is { Length: > 0 } raw ? raw : Request.PathBase + Request.Path + Request.QueryString;
        var verdict = RequestSignature.Verify(keyId, participant.Key, Request.Method, target,
            SingleOrNull(headers[RequestSignature.TimestampHeader]), SingleOrNull(headers[RequestSignature.SignatureHeader]),
            body, TimeProvider.GetUtcNow(), Options.ClockSkew);
        if (verdict != SignatureCheck.Valid)
        {
            return Refuse(verdict, $"the signature of participant {keyId} does not hold");
        }

        var principal = new System.Security.Claims.ClaimsPrincipal(ApiCaller.Identity(CallerKind.Participant, keyId, "participant:" + keyId));
        return AuthenticateResult.Success(new AuthenticationTicket(principal, Scheme.Name));
    }

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        var result = await HandleAuthenticateOnceSafeAsync().ConfigureAwait(false);
        await AuthenticationProblem.WriteAsync(Context, $"Refused: {result.Failure?.Message ?? "no signature"}.").ConfigureAwait(false);
    }

    /// <summary>The body, buffered so the endpoint reads it again; null when larger than allowed.</summary>
    private async Task<byte[]?> ReadBodyAsync()
    {
        if (Request.ContentLength > Options.MaxBodyBytes)
        {
            return null;
        }

        Request.EnableBuffering(Options.MaxBodyBytes);
        using var copy = new MemoryStream();
        var buffer = new byte[8192];
        int read;
        while ((read = await Request.Body.ReadAsync(buffer, Context.RequestAborted).ConfigureAwait(false)) > 0)
        {
            if (copy.Length + read > Options.MaxBodyBytes)
            {
                return null;
            }

            copy.Write(buffer, 0, read);
        }

        Request.Body.Position = 0;
        return copy.ToArray();
    }

    private static string? SingleOrNull(Microsoft.Extensions.Primitives.StringValues values) => values.Count == 1 ? values[0] : null;

    private AuthenticateResult Refuse(SignatureCheck verdict, string reason)
    {
        var message = $"{verdict}: {reason}";
        Log.CredentialsRefused(Logger, Scheme.Name, TwoPC.Transactions.TransactionIdFormatException.Sanitize(Request.Path.Value), message);
        return AuthenticateResult.Fail(message);
    }
}
