using System.Net;
using TwoPC.Client;

namespace TwoPC.Participants.Remote;

// Reporting a Yes vote early: right after PREPARE, so the coordinator's phase 1 needs no prepare callback.
public sealed partial class RemoteParticipant
{
    private volatile bool _coordinatorTakesReports = true;

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
