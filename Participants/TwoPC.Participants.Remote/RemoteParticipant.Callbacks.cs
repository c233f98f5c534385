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

        // Not in memory (this process restarted, or the request failed before joining): PostgreSQL knows.
        return await Local.IsPreparedAsync(xid, cancellationToken).ConfigureAwait(false)
            ? Answer("prepare", xid, "Yes (found prepared)", Results.Ok(new PrepareCallbackResponse(CallbackVote.Yes)))
            : Answer("prepare", xid, "unknown branch", Results.Problem(statusCode: StatusCodes.Status409Conflict, title: "Not prepared", detail: $"Branch {xid} is not prepared here (its request failed or never finished)."));
    }

    internal async Task<IResult> OnCommitAsync(Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken)
    {
        var outcome = await Local.CommitAsync(xid, recoveryData, cancellationToken).ConfigureAwait(false);
        if (_branches.TryGetValue(xid.ToString(), out var branch))
        {
            Forget(branch);
        }

        return Answer("commit", xid, outcome.ToString(), Results.Ok(new FinishCallbackResponse(ToWire(outcome))));
    }

    internal async Task<IResult> OnRollbackAsync(Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken)
    {
        if (_branches.TryGetValue(xid.ToString(), out var branch))
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

        var rolledBack = await Local.RollbackAsync(xid, recoveryData, cancellationToken).ConfigureAwait(false);
        if (branch is not null)
        {
            Forget(branch);
        }

        return Answer("rollback", xid, rolledBack.ToString(), Results.Ok(new FinishCallbackResponse(ToWire(rolledBack))));
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
