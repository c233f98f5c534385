using System.Threading.RateLimiting;
using TwoPC.Client;
using TwoPC.Transactions;

namespace TwoPC.Coordinator.Server;

/// <summary>
/// The policy of every call the coordinator makes to a remote participant, in front of the participant
/// <see cref="HttpClient"/>: the target must be the configured participant's callback URL (or, for an unconfigured
/// participant in development mode, of an allowed origin) — checked at call time, so a URL read back from the log is
/// held to today's configuration; the call is signed under that participant's own key (the key itself is never sent);
/// at most <see cref="CoordinatorLimitsOptions.MaxConcurrentParticipantCalls"/> calls run at once. Transport details
/// (addresses, errors, status codes) go to the log only: the exceptions callers see, which end up in outcome reasons
/// returned by the API, say which participant failed and nothing about the target.
/// </summary>
internal sealed class ParticipantCallHandler(ParticipantDirectory directory, ConcurrencyLimiter limiter, TimeProvider time, ILogger logger) : DelegatingHandler
{
    /// <summary>The request option naming the participant a call is for (set by <see cref="HttpParticipantResourceManager"/>).</summary>
    public static readonly HttpRequestOptionsKey<string> Participant = new("TwoPC.Participant");

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var target = request.RequestUri ?? throw new InvalidOperationException("A participant call needs an absolute URI.");
        if (!request.Options.TryGetValue(Participant, out var name))
        {
            throw new InvalidOperationException("The participant HttpClient only sends calls that name their participant.");
        }

        var shownTarget = TransactionIdFormatException.Sanitize(target.GetLeftPart(UriPartial.Path));
        string? key = null;
        if (directory.TryGet(name, out var identity))
        {
            if (!ParticipantDirectory.IsUnder(target, identity.CallbackUrl))
            {
                throw Refused(name, shownTarget, "the address is not under the participant's configured callback URL");
            }

            key = identity.Key;
        }
        else if (!directory.AllowUnconfiguredParticipants)
        {
            throw Refused(name, shownTarget, $"it is not configured (Coordinator:Participants:{name})");
        }
        else if (!directory.AllowsOrigin(target))
        {
            throw Refused(name, shownTarget, "its callback URL's origin is not in Coordinator:AllowedCallbackOrigins");
        }

        // Waiting callers are the coordinator's own phase-1/phase-2 tasks; they queue rather than open more sockets.
        using var lease = await limiter.AcquireAsync(1, cancellationToken).ConfigureAwait(false);
        if (!lease.IsAcquired)
        {
            throw new HttpRequestException($"Participant '{name}' was not called: too many participant calls are waiting.");
        }

        if (key is not null)
        {
            // Signed once its turn has come, so time spent queued never eats into the participant's clock-skew window.
            await RequestSignature.SignAsync(request, name, key, time.GetUtcNow(), cancellationToken).ConfigureAwait(false);
        }

        HttpResponseMessage response;
        try
        {
            response = await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException ex)
        {
            // The message names the address (host:port, "connection refused"...): the log's, not the API's.
            ParticipantCallLog.CallFailed(logger, name, shownTarget, ex.Message);
            throw new HttpRequestException($"Participant '{name}' was unreachable (details in the coordinator's log).", null, ex.StatusCode);
        }

        var status = (int)response.StatusCode;
        if (status is >= 300 and < 400)
        {
            var location = TransactionIdFormatException.Sanitize(response.Headers.Location?.ToString() ?? "(none)");
            ParticipantCallLog.RedirectNotFollowed(logger, name, shownTarget, status, location);
        }
        else if (status != 200)
        {
            ParticipantCallLog.ErrorAnswer(logger, name, shownTarget, status);
        }

        return response;
    }

    private HttpRequestException Refused(string name, string target, string reason)
    {
        ParticipantCallLog.CallRefused(logger, name, target, reason);
        return new HttpRequestException($"Participant '{name}' was not called: {reason}.");
    }
}
