using Microsoft.Extensions.Logging;
using TwoPC.Diagnostics;
using TwoPC.Durability;
using TwoPC.Participants;
using TwoPC.Protocol;
using TwoPC.Transactions;

namespace TwoPC.Recovery;

/// <summary>What recovery needs for last-resource transactions: the re-drive of a committed marker (the protocol's), metrics, and the crash tests' step hook.</summary>
/// <param name="Redrive">Starts phase 2 of a committed marker in the background; false when this process already drives it.</param>
/// <param name="Metrics">The last-resource instruments.</param>
/// <param name="StepHook">The crash tests' hook (<see cref="ProtocolStep.AfterFence"/>).</param>
internal sealed record LastResourceRecovery(
    Func<ICommitMarkerStore, CommitDecision, bool> Redrive,
    LastResourceMetrics Metrics,
    Func<ProtocolStep, GlobalTransactionId, int, ValueTask>? StepHook);

// R1 and R2 of the last-resource commit (the safety argument is at the top of TwoPhaseCommit.LastResource.cs).
internal sealed partial class RecoveryManager
{
    /// <summary>How many markers one read returns.</summary>
    internal const int MarkerBatch = 1000;

    /// <summary>Set by the coordinator; without it, markers are not scanned and orphans naming a last resource stay in doubt.</summary>
    public LastResourceRecovery? LastResource { get; set; }

    /// <summary>
    /// R1: every committed marker of a transaction that is ours (<see cref="IsOwn"/>: several coordinator nodes may share
    /// a database; another node's markers are never re-driven here), not live in this process and with no heuristic on
    /// record, has its phase 2 re-driven from the marker's payload. Run first in a pass, so the orphans of those
    /// transactions classify as committing.
    /// </summary>
    private async Task RedriveCommittedMarkersAsync(HashSet<GlobalTransactionId> liveAtStart, CancellationToken cancellationToken)
    {
        if (LastResource is not { } lastResource)
        {
            return;
        }

        foreach (var rm in resourceManagers.All)
        {
            if (rm is not ICommitMarkerStore store)
            {
                continue;
            }

            string? after = null;
            while (true)
            {
                IReadOnlyList<CommitMarker> batch;
                try
                {
                    batch = await store.ReadCommittedMarkersAsync(after, MarkerBatch, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
                {
                    logger.MarkerScanFailed(ex, rm.Name);
                    break;
                }

                foreach (var marker in batch)
                {
                    var id = marker.TransactionId;
                    if (!IsOwn(id) || liveAtStart.Contains(id) || table.IsLive(id) || table.TryGetHeuristic(id, out _))
                    {
                        continue;
                    }

                    CommitDecision decision;
                    try
                    {
                        decision = TwoPhaseCommit.DecodePayload(marker.Payload.Span);
                        if (decision.TransactionId != id)
                        {
                            throw new FormatException($"the payload names transaction {decision.TransactionId}");
                        }
                    }
                    catch (Exception ex) when (ex is FormatException or TransactionLogCorruptedException or TransactionIdFormatException or ArgumentException)
                    {
                        logger.MarkerUnreadable(id, rm.Name, ex.Message);
                        continue;
                    }

                    if (lastResource.Redrive(store, decision))
                    {
                        logger.MarkerRedriven(id, rm.Name, decision.Branches.Count);
                    }
                }

                if (batch.Count < MarkerBatch)
                {
                    break;
                }

                after = batch[^1].TransactionId.ToString();
            }
        }
    }

    /// <summary>
    /// An orphan (classified for presumed abort): a branch of the present protocol is rolled back; R2 — a branch whose XID
    /// names a last resource is first fenced in that resource's marker table, and rolled back only when the fence says
    /// aborted. A committed marker is left to R1 (next pass); a fence that fails leaves the branch in doubt.
    /// </summary>
    private async Task<(InDoubtResolution, string?)> ResolveOrphanAsync(IResourceManager rm, Xid xid, TimeSpan age, CancellationToken cancellationToken)
    {
        if (!LastResourceXid.TryGetHash(xid, out var hash) || xid.TryGetGlobalTransactionId() is not { } id)
        {
            return await RollBackOrphanAsync(rm, xid, age, cancellationToken).ConfigureAwait(false);
        }

        var stores = resourceManagers.MarkerStoresFor(hash);
        if (stores.Count == 0 || LastResource is not { } lastResource)
        {
            logger.LastResourceUnknown(xid, rm.Name);
            return (InDoubtResolution.Failed, "its XID names a last resource (commit-marker store) that is not registered here; register it so recovery can fence the transaction");
        }

        var committed = false;
        foreach (var candidate in stores)
        {
            var name = ((IResourceManager)candidate).Name;
            MarkerState state;
            try
            {
                state = await candidate.FenceAsync(id, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                lastResource.Metrics.Fences.Add(1, new KeyValuePair<string, object?>("result", "failed"));
                logger.FenceFailed(ex, id, name);
                return (InDoubtResolution.Failed, $"fencing its transaction in the last resource {name} failed ({ex.Message}); retried next pass");
            }

            lastResource.Metrics.Fences.Add(1, new KeyValuePair<string, object?>("result", state == MarkerState.Committed ? "committed" : "aborted"));
            logger.Fenced(id, name, state);
            committed |= state == MarkerState.Committed;
        }

        if (lastResource.StepHook is { } hook)
        {
            await hook(ProtocolStep.AfterFence, id, 0).ConfigureAwait(false);
        }

        return committed
            ? (InDoubtResolution.Committing, "its last resource committed with its marker: the marker drives phase 2 (next pass)")
            : await RollBackOrphanAsync(rm, xid, age, cancellationToken).ConfigureAwait(false);
    }
}
