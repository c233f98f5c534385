using System.Diagnostics;
using System.Net;
using Microsoft.AspNetCore.Http;
using TwoPC.Client;
using TwoPC.Transactions;

namespace TwoPC.Participants.Remote;

// Joining: a request handler registers its branch with the coordinator, then begins the local transaction.
public sealed partial class RemoteParticipant
{
    /// <summary>Joins the global transaction named by the request's <see cref="TwoPCHeaders.TransactionId"/> header.</summary>
    /// <exception cref="RemoteParticipantException">The header is missing or malformed (400), the transaction is unknown (404) or no longer active (409), or the coordinator is unreachable (503).</exception>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("ApiDesign", "RS0026:Do not add multiple public overloads with optional parameters", Justification = "The overloads differ in the type of their first, required parameter, so a call is never ambiguous.")]
    public Task<RemoteBranch> JoinAsync(HttpContext context, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        var header = context.Request.Headers[TwoPCHeaders.TransactionId];
        if (header.Count != 1 || string.IsNullOrEmpty(header[0]))
        {
            throw new RemoteParticipantException(StatusCodes.Status400BadRequest, "Missing transaction id", $"A branch request needs exactly one {TwoPCHeaders.TransactionId} header.");
        }

        return JoinAsync(header[0]!, cancellationToken);
    }

    /// <summary>
    /// Joins global transaction <paramref name="transactionId"/>: registers this participant's branch with the
    /// coordinator (before any PREPARE, so the coordinator always knows to ask), then begins the PostgreSQL
    /// transaction under the XID it assigned.
    /// </summary>
    /// <exception cref="RemoteParticipantException">See <see cref="JoinAsync(HttpContext, CancellationToken)"/>.</exception>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("ApiDesign", "RS0026:Do not add multiple public overloads with optional parameters", Justification = "The overloads differ in the type of their first, required parameter, so a call is never ambiguous.")]
    public async Task<RemoteBranch> JoinAsync(string transactionId, CancellationToken cancellationToken = default)
    {
        if (!GlobalTransactionId.TryParse(transactionId, out var id))
        {
            throw new RemoteParticipantException(StatusCodes.Status400BadRequest, "Malformed transaction id", $"{TransactionIdFormatException.Sanitize(transactionId ?? string.Empty)} is not a global transaction id.");
        }

        var local = Local;
        var activity = Source.StartActivity("twopc.remote.branch", ActivityKind.Internal);
        activity?.SetTag("twopc.transaction_id", id.ToString());
        activity?.SetTag("twopc.resource_manager", Options.Name);
        RegisterBranchResponse registered;
        try
        {
            registered = await Coordinator.RegisterBranchAsync(id.ToString(), Options.Name, Options.CallbackUrl!, cancellationToken).ConfigureAwait(false);
        }
        catch (TwoPCApiException ex)
        {
            activity?.SetStatus(ActivityStatusCode.Error, ex.Message);
            activity?.Dispose();
            Logger.JoinRefused(id.ToString(), ex.Message);
            var status = ex.StatusCode switch
            {
                HttpStatusCode.NotFound => StatusCodes.Status404NotFound,
                HttpStatusCode.Conflict => StatusCodes.Status409Conflict,
                HttpStatusCode.BadRequest => StatusCodes.Status400BadRequest,
                _ => StatusCodes.Status503ServiceUnavailable,
            };
            throw new RemoteParticipantException(status, "Cannot join the transaction", $"The coordinator refused the branch of {id}: {ex.Message}", ex);
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
        {
            activity?.SetStatus(ActivityStatusCode.Error, ex.Message);
            activity?.Dispose();
            Logger.JoinRefused(id.ToString(), ex.Message);
            throw new RemoteParticipantException(StatusCodes.Status503ServiceUnavailable, "Coordinator unreachable", $"The coordinator at {Options.CoordinatorUrl} could not be reached: {ex.Message}", ex);
        }

        var xid = Xid.Parse(registered.Xid);
        var deadline = registered.Deadline ?? Time.GetUtcNow().AddMinutes(1);
        activity?.SetTag("twopc.xid", xid.ToString());
        ILocalBranch begun;
        try
        {
            begun = await local.BeginBranchAsync(xid, deadline, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            // Registered but never begun: the coordinator's prepare call finds no branch and counts a No vote.
            activity?.Dispose();
            throw;
        }

        var branch = new RemoteBranch(this, id.ToString(), xid, deadline, begun, activity);
        _branches[xid.ToString()] = branch;
        Logger.Joined(branch.TransactionId, xid);
        return branch;
    }
}
