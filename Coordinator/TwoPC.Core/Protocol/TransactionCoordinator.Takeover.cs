using TwoPC.Diagnostics;
using TwoPC.Durability;
using TwoPC.Transactions;

namespace TwoPC.Protocol;

// High availability on a shared log (ISharedTransactionLog). Each node holds a lease whose epoch fences its decision
// writes. When a node's lease expires, a live node takes it over and does for it exactly what its own restart would:
//   1. The log raises the dead node's epoch (the fence) and only then reads its pending decisions and heuristics. A
//      decision the dead node was writing is therefore either among them or refused to it — never lost, never both.
//   2. Every pending decision is listed as recovering and its phase 2 re-driven, BEFORE step 3: a recovery pass must see
//      "committing" for every branch of a logged decision.
//   3. The node is adopted by the recovery manager: its branches with an epoch up to the fenced one and no decision on
//      record are rolled back (presumed abort), at once — a fenced node can never log a decision for them.
//   4. A recovery pass runs immediately, so the dead node's in-doubt branches are resolved within a takeover interval
//      plus one pass after its lease expired.
// A node whose own write was refused (fenced) stops: its log has failed, it begins nothing and takes nobody over.
public sealed partial class TransactionCoordinator
{
    /// <summary>This node's lease on a shared log; <see langword="null"/> on a single-node log or before start.</summary>
    public NodeLease? Lease => (_log as ISharedTransactionLog)?.Lease;

    /// <summary><see langword="true"/> when another node took over this node's lease: it decides nothing more until restarted.</summary>
    public bool IsFenced => _log.Failure is NodeFencedException;

    /// <summary>The nodes this coordinator took over on a shared log, with the epoch each was fenced at.</summary>
    public IReadOnlyDictionary<NodeId, ulong> AdoptedNodes => _recovery.Adopted;

    /// <summary>
    /// What is known about a transaction begun by any node: this coordinator's own record first (<see cref="GetStatus"/>);
    /// on a shared log, for another node's transaction it has no record of, the shared log's —
    /// <see cref="TransactionState.Committing"/> when a commit decision is on record, <see cref="TransactionState.Active"/>
    /// while its node may still decide, <see cref="TransactionState.Unknown"/> (presumed abort) when it no longer can.
    /// </summary>
    public async ValueTask<TransactionStatus> GetStatusAsync(GlobalTransactionId transactionId, CancellationToken cancellationToken = default)
    {
        var local = GetStatus(transactionId);
        if (local.State != TransactionState.Unknown || transactionId.Node == NodeId || _log is not ISharedTransactionLog shared)
        {
            return local;
        }

        return await shared.FindDecisionAsync(transactionId, cancellationToken).ConfigureAwait(false) switch
        {
            SharedDecision.Committed => local with { State = TransactionState.Committing },
            SharedDecision.Undetermined => local with { State = TransactionState.Active },
            _ => local,
        };
    }

    /// <summary>Takes over every node whose lease expired now (the takeover loop does this every <see cref="TransactionCoordinatorOptions.TakeoverInterval"/>).</summary>
    /// <returns>How many nodes this call took over.</returns>
    internal async Task<int> TakeOverExpiredNodesAsync(ISharedTransactionLog shared, CancellationToken cancellationToken)
    {
        var taken = 0;
        foreach (var lease in await shared.FindTakeoverCandidatesAsync(cancellationToken).ConfigureAwait(false))
        {
            if (_log.Failure is not null)
            {
                break;
            }

            var started = Time.GetTimestamp();
            if (await shared.TryTakeOverAsync(lease.Node, cancellationToken).ConfigureAwait(false) is not { } state)
            {
                continue; // it renewed, or another live node was quicker
            }

            foreach (var heuristic in state.Heuristics)
            {
                _table.AddHeuristic(heuristic);
            }

            var redriven = Redrive(state.PendingDecisions); // its heuristics are listed first, so their decisions are skipped
            _recovery.Adopt(state.Node, state.FencedEpoch);
            _metrics.Takeovers.Add(1);
            _logger.NodeTakenOver(state.Node.Value, lease.ExpiresAt, state.FencedEpoch, redriven, state.Heuristics.Count, Time.GetElapsedTime(started));
            taken++;
        }

        if (taken > 0)
        {
            // Resolve the taken-over nodes' orphans now rather than at the next periodic pass.
            await _recovery.RunPassAsync(cancellationToken).ConfigureAwait(false);
        }

        return taken;
    }

    private async Task TakeoverLoopAsync(CancellationToken stopping)
    {
        if (_log is not ISharedTransactionLog shared)
        {
            return;
        }

        using var timer = new PeriodicTimer(_options.TakeoverInterval, Time);
        while (await timer.WaitForNextTickAsync(stopping).ConfigureAwait(false))
        {
            if (_log.Failure is { } failure)
            {
                // Fenced (or the log failed): this node decides nothing more, for itself or for anyone else.
                _logger.TakeoversStopped(failure);
                return;
            }

            try
            {
                await TakeOverExpiredNodesAsync(shared, stopping).ConfigureAwait(false);
            }
            catch (Exception ex) when (!stopping.IsCancellationRequested)
            {
                _logger.TakeoverFailed(ex);
            }
        }
    }
}
