using Microsoft.AspNetCore.Http;
using TwoPC.Client;
using TwoPC.Transactions;

namespace TwoPC.Participants.Remote;

// The coordinator's callbacks: prepare, commit and rollback of one branch, answered in the callback contract.
public sealed partial class RemoteParticipant
{
    /// <summary>The coordinator's prepare call: the vote of the branch's request, or from <c>pg_prepared_xacts</c> after a restart.</summary>
    internal async Task<IResult> OnPrepareAsync(Xid xid, CancellationToken cancellationToken)
    {
        if (_branches.TryGetValue(xid.ToString(), out var branch))
        {
            if (branch.VoteForCoordinator() is not { } vote)
            {
                return Answer("prepare", xid, "in progress", Results.StatusCode(TooEarly));
            }

            if (vote.Kind != VoteKind.Yes)
            {
                Forget(branch); // no phase 2 follows a No or read-only vote
            }

            // The resource's recovery data (PostgreSQL's transaction id) rides with the coordinator's decision, so a
            // repeated commit after this process restarted is still answered exactly.
            var recoveryData = vote.RecoveryData.IsEmpty ? null : Convert.ToBase64String(vote.RecoveryData.Span);
            return Answer("prepare", xid, vote.Kind.ToString(), Results.Ok(new PrepareCallbackResponse(ToWire(vote.Kind), vote.Reason, recoveryData)));
        }

        if (await RefusalAsync("prepare", xid, cancellationToken).ConfigureAwait(false) is { } refusal)
        {
            return refusal;
        }

        // Not in memory (this process restarted, or the request failed before joining): PostgreSQL knows.
        return await Local.IsPreparedAsync(xid, cancellationToken).ConfigureAwait(false)
            ? Answer("prepare", xid, "Yes (found prepared)", Results.Ok(new PrepareCallbackResponse(CallbackVote.Yes)))
            : Answer("prepare", xid, "unknown branch", Results.Problem(statusCode: StatusCodes.Status409Conflict, title: "Not prepared", detail: $"Branch {xid} is not prepared here (its request failed or never finished)."));
    }

    internal async Task<IResult> OnCommitAsync(Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken)
    {
        var tracked = _branches.TryGetValue(xid.ToString(), out var branch);
        if (!tracked)
        {
            // Only a branch of its coordinator that is prepared here, or one it finished and can answer for exactly (the
            // coordinator's repeat after a lost answer or a restart): never a commit of anything else.
            if (await RefusalAsync("commit", xid, cancellationToken).ConfigureAwait(false) is { } refusal)
            {
                return refusal;
            }

            if (!Local.CanAnswerFinished(xid, recoveryData) && !await Local.IsPreparedAsync(xid, cancellationToken).ConfigureAwait(false))
            {
                return NotOurs("commit", xid, StatusCodes.Status404NotFound, "Unknown branch", $"No branch {xid} is prepared in this participant's database, and it knows nothing of one it finished.");
            }
        }

        BranchOutcome outcome;
        try
        {
            outcome = await Local.CommitAsync(xid, recoveryData, cancellationToken).ConfigureAwait(false);
        }
        catch (ForeignBranchException ex)
        {
            return NotOurs("commit", xid, StatusCodes.Status409Conflict, "Not this participant's branch", ex.Message);
        }

        if (branch is not null)
        {
            Forget(branch);
        }

        return Answer("commit", xid, outcome.ToString(), Results.Ok(new FinishCallbackResponse(ToWire(outcome))));
    }

    internal async Task<IResult> OnRollbackAsync(Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken)
    {
        var tracked = _branches.TryGetValue(xid.ToString(), out var branch);
        if (!tracked)
        {
            if (await RefusalAsync("rollback", xid, cancellationToken).ConfigureAwait(false) is { } refusal)
            {
                return refusal;
            }

            if (!Local.CanAnswerFinished(xid, recoveryData) && !await Local.IsPreparedAsync(xid, cancellationToken).ConfigureAwait(false))
            {
                // A branch of its coordinator with nothing prepared here and nothing known of it (its request never began
                // its local transaction, or it was rolled back before): rolled back as far as this database goes
                // (presumed abort), and the database is not touched.
                return Answer("rollback", xid, "RolledBack (nothing prepared)", Results.Ok(new FinishCallbackResponse(CallbackOutcome.RolledBack)));
            }
        }

        if (branch is not null)
        {
            var (inProgress, ended) = await branch.RollbackForCoordinatorAsync(cancellationToken).ConfigureAwait(false);
            if (inProgress)
            {
                return Answer("rollback", xid, "in progress", Results.StatusCode(TooEarly));
            }

            if (ended is { } outcome)
            {
                Forget(branch);
                return Answer("rollback", xid, outcome.ToString(), Results.Ok(new FinishCallbackResponse(ToWire(outcome))));
            }
        }

        BranchOutcome rolledBack;
        try
        {
            rolledBack = await Local.RollbackAsync(xid, recoveryData, cancellationToken).ConfigureAwait(false);
        }
        catch (ForeignBranchException ex)
        {
            return NotOurs("rollback", xid, StatusCodes.Status409Conflict, "Not this participant's branch", ex.Message);
        }

        if (branch is not null)
        {
            Forget(branch);
        }

        return Answer("rollback", xid, rolledBack.ToString(), Results.Ok(new FinishCallbackResponse(ToWire(rolledBack))));
    }

    /// <summary>
    /// Why a callback about a branch this process does not track is not this participant's to act on (null when it is):
    /// not a TwoPC XID (404), or a TwoPC XID of another coordinator node than the one at <see cref="RemoteParticipantOptions.CoordinatorUrl"/> (404).
    /// </summary>
    private async Task<IResult?> RefusalAsync(string action, Xid xid, CancellationToken cancellationToken)
    {
        if (xid.TryGetGlobalTransactionId() is not { } id)
        {
            return NotOurs(action, xid, StatusCodes.Status404NotFound, "Not a TwoPC branch", $"{xid} is not a TwoPC XID: this participant acts only on branches of its coordinator.");
        }

        string node;
        try
        {
            node = await CoordinatorNodeForAsync(id.Node.Value, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is HttpRequestException or TwoPCApiException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
        {
            // Cannot tell whose branch it is right now: the coordinator asks again.
            Logger.CallbackNotOurs(action, xid, "the coordinator's node id could not be read: " + ex.Message);
            return Results.Problem(statusCode: StatusCodes.Status503ServiceUnavailable, title: "Coordinator unreachable", detail: "This participant could not ask its coordinator whose branch this is; ask again later.");
        }

        return node == id.Node.Value || node == SharedLogCluster
            ? null
            : NotOurs(action, xid, StatusCodes.Status404NotFound, "Not this coordinator's branch", $"{xid} is a branch of coordinator node '{id.Node.Value}'; this participant's coordinator is node '{node}'.");
    }

    // The coordinator's node id, cached; asked again when a callback names another node (the coordinator may have been renamed).
    private const string SharedLogCluster = "*shared-log*"; // not a valid node id, so it never equals one

    private async Task<string> CoordinatorNodeForAsync(string expected, CancellationToken cancellationToken)
    {
        // A cluster on a shared log answers for every node: its dead nodes' branches come from live ones, which is
        // exactly when the node the branch names cannot be asked.
        if (_coordinatorNode is { } known && (known == expected || known == SharedLogCluster))
        {
            return known;
        }

        var info = await Coordinator.GetInfoAsync(cancellationToken).ConfigureAwait(false);

        // A cluster on a shared log commits and rolls back every node's transactions from any node (takeover).
        var node = info.SharedLog ? SharedLogCluster : info.NodeId;
        _coordinatorNode = node;
        return node;
    }

    private IResult NotOurs(string action, Xid xid, int status, string title, string detail)
    {
        Logger.CallbackNotOurs(action, xid, detail);
        Metrics.Callback(action, "refused");
        return Results.Problem(statusCode: status, title: title, detail: detail);
    }

    private IResult Answer(string action, Xid xid, string answer, IResult result)
    {
        Logger.Callback(action, xid, answer);
        Metrics.Callback(action, answer);
        return result;
    }

    private static CallbackVote ToWire(VoteKind vote) => vote switch
    {
        VoteKind.Yes => CallbackVote.Yes,
        VoteKind.ReadOnly => CallbackVote.ReadOnly,
        _ => CallbackVote.No,
    };

    private static CallbackOutcome ToWire(BranchOutcome outcome) => outcome switch
    {
        BranchOutcome.Committed => CallbackOutcome.Committed,
        BranchOutcome.RolledBack => CallbackOutcome.RolledBack,
        BranchOutcome.Mixed => CallbackOutcome.Mixed,
        _ => CallbackOutcome.Unknown,
    };
}
