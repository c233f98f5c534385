using Microsoft.Extensions.Logging;
using TwoPC.Diagnostics;
using TwoPC.Durability;
using TwoPC.Participants;
using TwoPC.Recovery;
using TwoPC.Transactions;

namespace TwoPC.Protocol;

/// <summary>
/// An operator resolves one in-doubt branch by hand (for example a branch whose coordinator node is gone
/// for good). The safety rules keep a forced action from contradicting what this coordinator decided.
/// </summary>
/// <remarks>
/// For a branch of any TwoPC transaction this coordinator has a record of, whatever node its id names (a log
/// written under an earlier node id is still this coordinator's to honour):
/// <list type="bullet">
/// <item>Active, preparing, or in doubt after a log failure: both refused (the coordinator is still deciding,
/// or only a restart can tell what it decided).</item>
/// <item>Committing or committed (a commit decision on record): rollback refused; commit allowed (it agrees),
/// with the decision's recovery data.</item>
/// <item>Rolling back or rolled back: commit refused; rollback allowed.</item>
/// <item>Heuristic: <c>HeuristicCommit</c> follows a rollback decision, so commit is refused; every other kind may
/// follow a commit decision, so rollback is refused. The call carries the branch's recovery data from the heuristic
/// record.</item>
/// <item>No record, and the XID names a last resource (<see cref="LastResourceXid"/>, any node's id): the decision of a
/// last-resource transaction is the commit marker in that resource, not a record here, so the transaction is fenced
/// there first (idempotent and final). <c>'C'</c>: rollback refused; commit allowed, with the branch's recovery data from
/// the marker's payload. <c>'A'</c>: rollback allowed; commit refused, even with the override (the fence is a recorded
/// abort). The last resource not registered: both refused; the fence failing: both fail. Never a guess.</item>
/// <item>No record, this node's id: rollback allowed (presumed abort says it did not commit); commit only with the
/// explicit override, because it contradicts presumed abort. An id this coordinator has not handed out yet is refused.</item>
/// </list>
/// A branch of another node's transaction that this coordinator has no record of, and whose XID names no last resource
/// (or not a TwoPC XID), is not this coordinator's to judge: both actions are allowed and the operator answers for them. Without recovery data the
/// resource manager must reach the branch by other means or fail; it never reports an outcome it did not get from the
/// resource. Forced actions never run during a recovery pass, are logged and counted. Forgetting a heuristic outcome,
/// the operator's other hand resolution, is here too.
/// </remarks>
internal sealed partial class ForcedResolution(
    TransactionIdAllocator ids,
    CoordinatorStatus status,
    ResourceManagerRegistry resourceManagers,
    ITransactionLog log,
    TransactionTable table,
    BranchCalls calls,
    RecoveryManager recovery,
    CoordinatorMetrics metrics,
    ILogger logger,
    TimeSpan fenceTimeout,
    TimeProvider time,
    CancellationToken stopping)
{
    /// <summary>
    /// <paramref name="cancellationToken"/> cancels only the wait for a running recovery pass (nothing was done yet);
    /// once the resource manager is called, the call runs to its end (a few attempts, each bounded by the branch call
    /// timeout) unless the coordinator stops, so an abandoned request never leaves a half-made call behind.
    /// </summary>
    public Task<ForcedBranchResult> ForceAsync(ForcedAction action, string resourceManager, Xid xid, bool overridePresumedAbort, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(resourceManager);
        ArgumentNullException.ThrowIfNull(xid);
        return recovery.ExclusiveAsync(() => ForceCoreAsync(action, resourceManager, xid, overridePresumedAbort, stopping), cancellationToken);
    }

    private async Task<ForcedBranchResult> ForceCoreAsync(ForcedAction action, string name, Xid xid, bool overridePresumedAbort, CancellationToken cancellationToken)
    {
        var rm = ResourceManagerRegistry.IsValidName(name) ? resourceManagers.Find(name) : null;
        if (rm is null)
        {
            var shown = TransactionIdFormatException.Sanitize(name);
            return Report(new ForcedBranchResult(action, name, xid, ForcedBranchStatus.UnknownResourceManager, null,
                $"No resource manager {shown} is registered with the coordinator (and the resolver supplied none)."), null);
        }

        var refusal = Check(action, name, xid, overridePresumedAbort, out var recoveryData, out var known, out var fence);
        if (refusal is null && fence is { } marker)
        {
            // No record here, and the decision lives in a last resource's marker table: the fence there decides.
            var verdict = await FenceAsync(action, name, xid, marker.Id, marker.Hash, cancellationToken).ConfigureAwait(false);
            if (verdict.FailureMessage is not null)
            {
                return Report(new ForcedBranchResult(action, name, xid, ForcedBranchStatus.Failed, null, verdict.FailureMessage), verdict.Error);
            }

            refusal = verdict.Refusal;
            recoveryData = verdict.RecoveryData;
        }

        if (refusal is not null)
        {
            return Report(new ForcedBranchResult(action, name, xid, ForcedBranchStatus.Refused, null, refusal), null);
        }

        if (known is { } recorded)
        {
            return Report(new ForcedBranchResult(action, name, xid, ForcedBranchStatus.Completed, recorded,
                $"The coordinator's record shows branch {xid} already {Words(recorded)}; the resource manager was not called."), null);
        }

        BranchOutcome outcome;
        try
        {
            outcome = await calls.ForceAsync(rm, action == ForcedAction.Commit, xid, recoveryData, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            return Report(new ForcedBranchResult(action, name, xid, ForcedBranchStatus.Failed, null,
                $"Resource manager '{name}' did not {Verb(action)} branch {xid}: {ex.Message}"), ex);
        }

        if (outcome is BranchOutcome.Committed or BranchOutcome.RolledBack)
        {
            recovery.Resolved(name, xid);
        }

        var expected = action == ForcedAction.Commit ? BranchOutcome.Committed : BranchOutcome.RolledBack;
        var message = outcome == expected
            ? $"Branch {xid} in '{name}' {Words(outcome)} by the operator."
            : $"Asked to {Verb(action)} branch {xid}, resource manager '{name}' reports it {Words(outcome)}.";
        return Report(new ForcedBranchResult(action, name, xid, ForcedBranchStatus.Completed, outcome, message), null);
    }

    /// <summary>
    /// An operator has dealt with a heuristic outcome: tell each resource to forget the branch, delete the transaction's
    /// commit marker when it was a last-resource transaction (else recovery's marker scan would re-drive it once the
    /// record is gone), append END, and drop the record. <see langword="false"/> when no heuristic is on record for the
    /// transaction. Runs while no recovery pass runs, so a pass never sees the marker without the record.
    /// </summary>
    /// <exception cref="InvalidOperationException">A branch's XID names a last resource that is not registered: its marker cannot be deleted (nothing was done).</exception>
    public Task<bool> ForgetHeuristicAsync(GlobalTransactionId transactionId, CancellationToken cancellationToken) =>
        recovery.ExclusiveAsync(() => ForgetHeuristicCoreAsync(transactionId, cancellationToken), cancellationToken);

    private async Task<bool> ForgetHeuristicCoreAsync(GlobalTransactionId transactionId, CancellationToken cancellationToken)
    {
        if (!table.TryGetHeuristic(transactionId, out var record))
        {
            return false;
        }

        var markerStores = MarkerStoresOf(record);
        foreach (var branch in record.Branches)
        {
            if (resourceManagers.Find(branch.ResourceManager) is { } rm)
            {
                await rm.ForgetAsync(branch.Xid, cancellationToken).ConfigureAwait(false);
            }
        }

        await DeleteMarkerAsync(transactionId, markerStores, cancellationToken).ConfigureAwait(false);
        log.LogEnd(transactionId);
        table.RemoveHeuristic(transactionId);
        logger.HeuristicForgotten(transactionId);
        return true;
    }

    /// <summary>Applies the safety rules; returns why the action is refused, or <see langword="null"/> when it may go ahead.</summary>
    /// <remarks><paramref name="fence"/> is set (and <see langword="null"/> returned) when there is no record here and the
    /// XID names a last resource: the caller fences the transaction there and applies the rule to what it reads.</remarks>
    private string? Check(ForcedAction action, string name, Xid xid, bool overridePresumedAbort, out ReadOnlyMemory<byte> recoveryData, out BranchOutcome? known, out (GlobalTransactionId Id, uint Hash)? fence)
    {
        recoveryData = ReadOnlyMemory<byte>.Empty;
        known = null;
        fence = null;
        var commit = action == ForcedAction.Commit;
        if (xid.TryGetGlobalTransactionId() is not { } id)
        {
            return null; // Not a TwoPC branch: the operator answers for it.
        }

        // Every record below applies whatever node the id names: after a node id change, the decisions and heuristics
        // logged under the old id are still this coordinator's (recovery re-drives them), and contradicting them would
        // break atomicity just the same.
        var ours = id.Node == ids.Node;
        if (ids.NotIssuedYet(id))
        {
            return $"Transaction {id} has not been begun by this coordinator yet.";
        }

        if (table.TryGetPhaseTwo(id, out var progress))
        {
            if (!commit)
            {
                return $"Transaction {id} has a commit decision{(progress.Logged ? " on record" : string.Empty)} and phase 2 is committing its branches; a forced rollback would break atomicity (force a commit instead).";
            }

            var index = progress.IndexOf(name, xid);
            if (index >= 0)
            {
                recoveryData = progress.Branches[index].RecoveryData;
                known = progress.IsAcknowledged(index) ? BranchOutcome.Committed : null;
            }

            return null;
        }

        var current = status.GetStatus(id);
        switch (current.State)
        {
            case TransactionState.Active or TransactionState.Preparing:
                return $"Transaction {id} is {current.State} in this coordinator; let it finish, or roll the transaction back.";
            case TransactionState.InDoubt:
                return $"The log failed while forcing the decision of transaction {id}, which may or may not be durable; restart the coordinator so recovery reads the log.";
            case TransactionState.Committing or TransactionState.Committed:
                if (!commit)
                {
                    return $"Transaction {id} has a commit decision on record ({current.State}); a forced rollback would break atomicity.";
                }

                known = RecordedOutcome(current, name, xid) is BranchOutcome.Committed ? BranchOutcome.Committed : null;
                return null;
            case TransactionState.RollingBack or TransactionState.RolledBack:
                if (commit)
                {
                    return $"Transaction {id} is known rolled back ({current.State}); a forced commit would break atomicity.";
                }

                known = RecordedOutcome(current, name, xid) is BranchOutcome.RolledBack ? BranchOutcome.RolledBack : null;
                return null;
            case TransactionState.Heuristic:
                if (table.TryGetHeuristic(id, out var heuristic))
                {
                    // The branch's recovery data (a remote participant's callback URL) is kept with the heuristic.
                    recoveryData = heuristic.Branches.FirstOrDefault(b => b.Xid == xid && string.Equals(b.ResourceManager, name, StringComparison.Ordinal))?.RecoveryData ?? default;
                }

                var kind = current.Outcome?.Kind;
                if (kind == OutcomeKind.HeuristicCommit)
                {
                    return commit ? $"Transaction {id} was decided rolled back (its outcome is {kind}); a forced commit would contradict the decision." : null;
                }

                return commit ? null : $"Transaction {id} ended {kind} after a commit decision may have been taken; a forced rollback would contradict it.";
            default:
                if (LastResourceXid.TryGetHash(xid, out var hash))
                {
                    // Checked after every record above: a transaction this process drives, or has a record of, is judged by it.
                    fence = (id, hash);
                    return null;
                }

                if (!ours)
                {
                    return null; // Another node's transaction this coordinator knows nothing of: the operator answers for it.
                }

                return commit && !overridePresumedAbort
                    ? $"The coordinator has no record of transaction {id}: under presumed abort it did not commit. Pass the override flag to commit the branch anyway (only when you know every other branch committed)."
                    : null;
        }
    }

    private static BranchOutcome? RecordedOutcome(TransactionStatus status, string name, Xid xid) =>
        status.Outcome?.Branches.FirstOrDefault(b => b.Xid == xid && string.Equals(b.ResourceManager, name, StringComparison.Ordinal))?.Outcome;

    private ForcedBranchResult Report(ForcedBranchResult result, Exception? error)
    {
        var action = result.Action == ForcedAction.Commit ? "commit" : "rollback";
        string outcome;
        switch (result.Status)
        {
            case ForcedBranchStatus.Completed:
                outcome = result.Outcome switch
                {
                    BranchOutcome.Committed => "committed",
                    BranchOutcome.RolledBack => "rolled_back",
                    BranchOutcome.Mixed => "mixed",
                    _ => "unknown",
                };
                logger.BranchForced(action, result.Xid, result.ResourceManager, result.Outcome ?? BranchOutcome.Unknown, result.Message);
                break;
            case ForcedBranchStatus.Failed:
                outcome = "failed";
                logger.BranchForceFailed(error, action, result.Xid, TransactionIdFormatException.Sanitize(result.ResourceManager));
                break;
            case ForcedBranchStatus.UnknownResourceManager:
                outcome = "unknown_resource_manager";
                logger.BranchForceRefused(action, result.Xid, TransactionIdFormatException.Sanitize(result.ResourceManager), result.Message);
                break;
            default:
                outcome = "refused";
                logger.BranchForceRefused(action, result.Xid, TransactionIdFormatException.Sanitize(result.ResourceManager), result.Message);
                break;
        }

        metrics.BranchesForced.Add(1, new KeyValuePair<string, object?>("action", action), new KeyValuePair<string, object?>("outcome", outcome));
        return result;
    }

    private static string Verb(ForcedAction action) => action == ForcedAction.Commit ? "commit" : "roll back";

    private static string Words(BranchOutcome outcome) => outcome switch
    {
        BranchOutcome.Committed => "committed",
        BranchOutcome.RolledBack => "rolled back",
        BranchOutcome.Mixed => "partly committed and partly rolled back (mixed)",
        _ => "in an unknown state",
    };
}
