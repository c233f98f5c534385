using TwoPC.Diagnostics;
using TwoPC.Durability;

namespace TwoPC.Protocol;

public sealed partial class TransactionCoordinator
{
    /// <summary>Re-driven phase-2 calls in flight at once per resource manager (the rest queue).</summary>
    internal const int DefaultRedriveParallelism = 32;

    /// <summary>
    /// Re-drives phase 2 of logged commit decisions in the background: every decision is listed as recovering at once
    /// (status queries answer Committing, and a recovery pass counts its branches as live, so none is presumed aborted),
    /// while the commit calls go out at most <see cref="DefaultRedriveParallelism"/> at a time per resource manager and
    /// the rest wait in that resource manager's queue. A slot is held for one attempt only: a branch that fails waits out
    /// its backoff without a slot, so one failing branch (or a resource that is down) does not stop the others.
    /// </summary>
    /// <remarks>
    /// Start-up recovery calls this with the decisions the log holds; it may be called again while the coordinator runs
    /// (a takeover of another node's decisions). A decision with a heuristic record on file is left to the operator; one
    /// that is live here already (begun here, or being driven by an earlier call) is skipped. Returns how many it started.
    /// </remarks>
    internal int Redrive(IReadOnlyList<CommitDecision> decisions)
    {
        ArgumentNullException.ThrowIfNull(decisions);
        var started = 0;
        foreach (var decision in decisions)
        {
            // A heuristic record supersedes its decision: the operator, not recovery, finishes it.
            if (_table.TryGetHeuristic(decision.TransactionId, out _))
            {
                continue;
            }

            // Listed before it runs, so a quick re-drive cannot complete before it is listed.
            var phaseTwo = new TaskCompletionSource<TransactionOutcome>(TaskCreationOptions.RunContinuationsAsynchronously);
            if (!_table.TryAddRecovering(decision.TransactionId, phaseTwo.Task))
            {
                continue;
            }

            started++;
            _ = Task.Run(async () =>
            {
                try
                {
                    phaseTwo.TrySetResult(await RedriveAsync(decision).ConfigureAwait(false));
                }
                catch (Exception ex)
                {
                    phaseTwo.TrySetException(ex);
                }
            }, CancellationToken.None);
        }

        return started;
    }

    private async Task<TransactionOutcome> RedriveAsync(CommitDecision decision)
    {
        var missingReported = new bool[decision.Branches.Count];
        var outcome = await _protocol.CommitPreparedAsync(decision.TransactionId, decision.Branches, i =>
        {
            if (_resourceManagers.Find(decision.Branches[i].ResourceManager) is { } rm)
            {
                return rm;
            }

            if (!missingReported[i])
            {
                missingReported[i] = true;
                _logger.ResourceManagerMissing(decision.Branches[i].ResourceManager, decision.Branches[i].Xid);
            }

            return null;
        }, logged: true, reports: null, Time.GetTimestamp(), decision.DecidedAt, _redriveGates).ConfigureAwait(false);
        _metrics.RecoveredCommits.Add(decision.Branches.Count);
        return outcome;
    }
}
