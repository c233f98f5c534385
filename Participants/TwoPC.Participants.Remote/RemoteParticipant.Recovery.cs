using TwoPC.Client;

namespace TwoPC.Participants.Remote;

// Participant-side recovery: prepared branches settled by the coordinator's record of their transaction.
public sealed partial class RemoteParticipant
{
    /// <summary>
    /// Participant-side recovery: every TwoPC branch prepared in this database by the coordinator's node, and
    /// not still being worked on here, is settled by the coordinator's record of its transaction: committed
    /// (or committing) → COMMIT PREPARED; rolled back → ROLLBACK PREPARED; no record and older than
    /// <see cref="RemoteParticipantOptions.OrphanSafetyInterval"/> → ROLLBACK PREPARED (presumed abort);
    /// active, preparing or heuristic → left alone. Runs every <see cref="RemoteParticipantOptions.RecoveryInterval"/>.
    /// </summary>
    /// <remarks>
    /// A coordinator cluster on a shared log (<see cref="CoordinatorInfoDto.SharedLog"/>) answers for every node's
    /// transactions, so its branches of any node are settled as described; otherwise:
    /// The coordinator's node id is asked at every pass, not cached: only the node a branch's XID names can say that it
    /// has no record of the transaction. A branch of any other node (one the coordinator at
    /// <see cref="RemoteParticipantOptions.CoordinatorUrl"/> was called before it was restarted under another node id,
    /// or a coordinator this participant was never pointed at) is never presumed aborted: it is left alone, with a
    /// warning, until that node's coordinator commits or rolls it back, or an operator does.
    /// </remarks>
    /// <returns>What was done with each branch found.</returns>
    public async Task<IReadOnlyList<RemoteRecoveryResult>> RecoverAsync(CancellationToken cancellationToken = default)
    {
        PruneFinished();
        var coordinatorNode = await CoordinatorNodeAsync(cancellationToken).ConfigureAwait(false);
        var results = new List<RemoteRecoveryResult>();
        var now = Time.GetUtcNow();
        var found = await Local.RecoverAsync(cancellationToken).ConfigureAwait(false);
        var prepared = found.Select(b => b.Xid.ToString()).ToHashSet(StringComparer.Ordinal);
        foreach (var warned in _otherNodeWarned.Keys)
        {
            if (!prepared.Contains(warned))
            {
                _otherNodeWarned.TryRemove(warned, out _); // resolved since: forget it
            }
        }

        foreach (var branch in found)
        {
            var xid = branch.Xid;
            if (xid.TryGetGlobalTransactionId() is not { } id)
            {
                results.Add(new RemoteRecoveryResult(xid, "OtherCoordinator", RemoteRecoveryAction.LeftAlone));
                continue;
            }

            if (id.Node.Value != coordinatorNode.NodeId && !coordinatorNode.SharedLog)
            {
                if (_otherNodeWarned.TryAdd(xid.ToString(), 0))
                {
                    Logger.RecoveryOtherNode(Options.Name, xid, id.Node.Value, Options.CoordinatorUrl!, coordinatorNode.NodeId);
                }

                results.Add(new RemoteRecoveryResult(xid, "OtherCoordinator", RemoteRecoveryAction.LeftAlone));
                continue;
            }

            // A branch this process prepared is normally finished by the coordinator's own phase-2 call: until its
            // deadline it is not even asked about. After a restart (the branch is not tracked) or past the deadline,
            // the coordinator's record decides.
            _branches.TryGetValue(xid.ToString(), out var live);
            if (live is not null && (live.IsInFlight || now <= live.Deadline))
            {
                results.Add(new RemoteRecoveryResult(xid, live.IsInFlight ? "InFlight" : "AwaitingCoordinator", RemoteRecoveryAction.LeftAlone));
                continue;
            }

            try
            {
                var status = await Coordinator.GetStatusAsync(id.ToString(), cancellationToken).ConfigureAwait(false);
                var stateName = status.State.ToString(); // the coordinator's word, as reported and logged
                var action = status.State switch
                {
                    // Decided: the coordinator is committing it too; step in only when its call is overdue.
                    TransactionStateDto.Committing or TransactionStateDto.Committed when live is null || now > live.Deadline + PhaseTwoGrace => RemoteRecoveryAction.Committed,
                    TransactionStateDto.RollingBack or TransactionStateDto.RolledBack => RemoteRecoveryAction.RolledBack,

                    // No record: never committed (presumed abort), and none can be logged past the deadline. With the
                    // deadline known, a little past it (clock skew); otherwise once older than the safety interval.
                    TransactionStateDto.Unknown when (live is not null ? now > live.Deadline + ClockSkewMargin : now - branch.PreparedAt > Options.OrphanSafetyInterval)
                        => RemoteRecoveryAction.RolledBack,
                    _ => RemoteRecoveryAction.LeftAlone,
                };

                if (status.State == TransactionStateDto.Unknown && action == RemoteRecoveryAction.RolledBack
                    && await CoordinatorNodeAsync(cancellationToken).ConfigureAwait(false) is var asked && asked.NodeId != id.Node.Value && !asked.SharedLog)
                {
                    // Restarted under another node id while we asked: its "no record" says nothing about this node's branch.
                    results.Add(new RemoteRecoveryResult(xid, "OtherCoordinator", RemoteRecoveryAction.LeftAlone));
                    continue;
                }

                switch (action)
                {
                    case RemoteRecoveryAction.Committed:
                        await Local.CommitAsync(xid, default, cancellationToken).ConfigureAwait(false);
                        break;
                    case RemoteRecoveryAction.RolledBack:
                        await Local.RollbackAsync(xid, default, cancellationToken).ConfigureAwait(false);
                        break;
                    default:
                        if (status.State == TransactionStateDto.Heuristic)
                        {
                            Logger.RecoveryHeuristic(Options.Name, xid);
                        }

                        break;
                }

                if (action != RemoteRecoveryAction.LeftAlone)
                {
                    var actionName = action.ToString();
                    Logger.Recovered(Options.Name, xid, stateName, actionName);
                    Metrics.Recovered(actionName);
                }

                results.Add(new RemoteRecoveryResult(xid, stateName, action));
            }
            catch (Exception ex) when ((ex is HttpRequestException or TwoPCApiException or TaskCanceledException || Local.IsResourceFailure(ex)) && !cancellationToken.IsCancellationRequested)
            {
                Logger.RecoveryBranchFailed(ex, Options.Name, xid);
                results.Add(new RemoteRecoveryResult(xid, "Unreachable", RemoteRecoveryAction.LeftAlone));
            }
        }

        return results;
    }

    private async Task<CoordinatorInfoDto> CoordinatorNodeAsync(CancellationToken cancellationToken) =>
        await Coordinator.GetInfoAsync(cancellationToken).ConfigureAwait(false);

    // Voted branches whose phase 2 never comes here (read-only, No, or a coordinator that moved on) are
    // dropped after their deadline: pg_prepared_xacts stays the source of truth for prepared ones.
    private void PruneFinished()
    {
        var cutoff = Time.GetUtcNow() - PhaseTwoGrace - TimeSpan.FromMinutes(1);
        foreach (var branch in _branches.Values)
        {
            if (!branch.IsInFlight && branch.Deadline < cutoff)
            {
                Forget(branch);
            }
        }
    }
}
