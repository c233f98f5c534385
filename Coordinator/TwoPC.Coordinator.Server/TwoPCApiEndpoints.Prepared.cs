using TwoPC.Client;
using TwoPC.Coordinator.Server.Security;
using TwoPC.Transactions;

namespace TwoPC.Coordinator.Server;

// POST /transactions/{id}/branches/{xid}/prepared: a participant that prepared at the end of its request reports its Yes
// vote, so phase 1 sends that branch no prepare callback.
public static partial class TwoPCApiEndpoints
{
    /// <summary>
    /// <c>POST /transactions/{id}/commit</c>, with an optional body <c>{ "preparedVotes": [...] }</c>: the participants' signed Yes
    /// votes the client collected from the branch services' answers, each counted only when its participant's signature holds
    /// (<see cref="PreparedVoteRelay"/>); a body this coordinator cannot read is ignored (an older client sends none).
    /// </summary>
    private static async Task<IResult> CommitAsync(string id, HttpRequest request, TransactionRegistry registry, CancellationToken cancellationToken)
    {
        if (TryParseId(id, out var txId, out _) && registry.TryGet(txId, out _))
        {
            var body = await ReadBodyAsync<CommitRequest>(request, optional: true);
            if (body.Value?.PreparedVotes is { Count: > 0 } votes)
            {
                PreparedVoteRelay.Apply(request.HttpContext, txId, votes, registry);
            }
        }

        return await FinishAsync(id, registry, commit: true, cancellationToken);
    }

    /// <summary>
    /// A participant reports branch <paramref name="xid"/> prepared. Authenticated and authorised exactly like its registration
    /// (a participant configured with a key must sign; a signed caller only under its own name). The vote counts only for
    /// that XID, a branch of transaction <paramref name="id"/> that this participant registered and that phase 1 has not
    /// asked yet: 204. Unknown transaction or branch 404, no longer active 409 (the coordinator asks by callback if it
    /// still needs the vote).
    /// </summary>
    private static async Task<IResult> ReportPreparedAsync(string id, string xid, HttpRequest request, TransactionRegistry registry)
    {
        if (!TryParseId(id, out var txId, out var error))
        {
            return error;
        }

        if (!Xid.TryParse(xid, out var branchXid) || branchXid.TryGetGlobalTransactionId() != txId)
        {
            return BadRequest($"{TransactionIdFormatException.Sanitize(xid)} is not the XID of a branch of {txId}.");
        }

        var body = await ReadBodyAsync<ReportPreparedRequest>(request, optional: false);
        if (body.Error is not null)
        {
            return body.Error;
        }

        var name = body.Value!.ResourceManager;
        if (!ResourceManagerName.IsValid(name))
        {
            return BadRequest($"resourceManager must be {ResourceManagerName.Rule}.");
        }

        if (TransactionAccess.RefuseBranchName(request.HttpContext, name) is { } refused)
        {
            return refused;
        }

        if (body.Value.RecoveryData is { } data && !HttpParticipantResourceManager.IsValidRecoveryData(data))
        {
            return BadRequest($"recoveryData must be base64 of at most {PrepareCallbackResponse.MaxRecoveryDataLength} characters.");
        }

        if (!registry.TryGet(txId, out _))
        {
            return NotOpen(registry, txId);
        }

        if (!registry.TryGetRemote(name, out var participant) || !participant.TryReportPrepared(branchXid, body.Value.RecoveryData))
        {
            return Results.Problem(statusCode: StatusCodes.Status404NotFound, title: "No branch waiting for its vote",
                detail: $"Transaction {txId} has no branch {branchXid} of {TransactionIdFormatException.Sanitize(name)} waiting for its vote (not registered, already asked, or rolled back).");
        }

        return Results.NoContent();
    }
}
