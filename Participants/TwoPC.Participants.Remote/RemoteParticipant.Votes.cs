using System.Net;
using System.Text.Json;
using TwoPC.Client;

namespace TwoPC.Participants.Remote;

// A Yes vote known to the coordinator before phase 1, so it sends no prepare callback: signed into the branch request's
// answer for the caller to relay with its commit, or reported directly right after PREPARE.
public sealed partial class RemoteParticipant
{
    private volatile bool _coordinatorTakesReports = true;

    /// <summary>
    /// The <see cref="TwoPCHeaders.PreparedVote"/> value for <paramref name="branch"/>'s Yes vote: the signature headers and body
    /// of the <c>POST /transactions/{id}/branches/{xid}/prepared</c> call it stands for, signed with this participant's key
    /// (the coordinator checks it as if it had received that call). Null without a key or with relaying off.
    /// </summary>
    internal async Task<string?> SignPreparedVoteAsync(RemoteBranch branch, Vote vote, CancellationToken cancellationToken)
    {
        if (!Options.RelayPreparedVotes || Options.Key is not { Length: > 0 } key || Coordinator.Http.BaseAddress is not { } coordinator)
        {
            return null;
        }

        var xid = branch.Xid.ToString();
        var recoveryData = vote.RecoveryData.IsEmpty ? null : Convert.ToBase64String(vote.RecoveryData.Span);
        var body = JsonSerializer.SerializeToUtf8Bytes(new { resourceManager = Options.Name, recoveryData }, TwoPCJson.Options);
        var target = new Uri(coordinator, "transactions/" + Uri.EscapeDataString(branch.TransactionId) + "/branches/" + Uri.EscapeDataString(xid) + "/prepared");
        using var call = new HttpRequestMessage(HttpMethod.Post, target) { Content = new ByteArrayContent(body) };
        await RequestSignature.SignAsync(call, Options.Name, key, Time.GetUtcNow(), cancellationToken).ConfigureAwait(false);
        Metrics.PreparedReported("signed");
        return string.Join(';',
            call.Headers.GetValues(RequestSignature.KeyIdHeader).Single(),
            Uri.EscapeDataString(xid),
            call.Headers.GetValues(RequestSignature.TimestampHeader).Single(),
            call.Headers.GetValues(RequestSignature.SignatureHeader).Single(),
            Convert.ToBase64String(body));
    }

    /// <summary>
    /// Tells the coordinator that <paramref name="branch"/> prepared (its Yes vote and recovery data), through the
    /// coordinator client, which signs it like every call of this participant. Never throws: a report that is refused or
    /// lost only means the coordinator asks by the prepare callback, which answers the same vote.
    /// </summary>
    internal async Task ReportPreparedAsync(RemoteBranch branch, Vote vote, CancellationToken cancellationToken)
    {
        if (!Options.ReportPreparedVotes || !_coordinatorTakesReports)
        {
            return;
        }

        var recoveryData = vote.RecoveryData.IsEmpty ? null : Convert.ToBase64String(vote.RecoveryData.Span);
        try
        {
            await Coordinator.ReportPreparedAsync(branch.TransactionId, branch.Xid.ToString(), Options.Name, recoveryData, cancellationToken).ConfigureAwait(false);
            Metrics.PreparedReported("taken");
        }
        catch (TwoPCApiException ex) when (ex.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.MethodNotAllowed && ex.Title is null)
        {
            // No problem details: no route for the call, a coordinator older than it.
            _coordinatorTakesReports = false;
            Metrics.PreparedReported("unsupported");
            Logger.PreparedReportsUnsupported(Options.CoordinatorUrl!);
        }
        catch (TwoPCApiException ex)
        {
            Metrics.PreparedReported("refused");
            Logger.PreparedNotReported(branch.Xid, ex.Message);
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or OperationCanceledException)
        {
            Metrics.PreparedReported("failed");
            Logger.PreparedNotReported(branch.Xid, ex.Message);
        }
    }
}
