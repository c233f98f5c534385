using TwoPC.Participants;
using TwoPC.Recovery;
using TwoPC.Transactions;

namespace TwoPC.Protocol;

/// <summary>
/// The operator's read-only view of the coordinator: what it knows of one transaction, and what waits in doubt.
/// Reads the transaction table and the last recovery pass; scans nothing.
/// </summary>
internal sealed class CoordinatorStatus(TransactionTable table, RecoveryManager recovery, TimeProvider time)
{
    /// <summary>What this coordinator knows about a transaction (for a live one, with its branches).</summary>
    public TransactionStatus GetStatus(GlobalTransactionId transactionId)
    {
        if (table.TryGetActive(transactionId, out var tx))
        {
            var enlisted = table.TryGetPhaseTwo(transactionId, out var running)
                ? PhaseTwoBranches(running)
                : [.. tx.SnapshotBranches().Select(b => new BranchReport(b.ResourceManager.Name, b.Xid, null, null))];
            return new TransactionStatus(transactionId, tx.State, null, tx.Deadline, enlisted);
        }

        if (table.TryGetHeuristic(transactionId, out var heuristic))
        {
            return new TransactionStatus(transactionId, TransactionState.Heuristic,
                new TransactionOutcome(transactionId, heuristic.Kind, heuristic.Reason, [.. heuristic.Branches.Select(b => new BranchReport(b.ResourceManager, b.Xid, VoteKind.Yes, b.Outcome ?? BranchOutcome.Unknown))]), null);
        }

        if (table.IsRecovering(transactionId))
        {
            return new TransactionStatus(transactionId, TransactionState.Committing, null, null,
                table.TryGetPhaseTwo(transactionId, out var redriven) ? PhaseTwoBranches(redriven) : null);
        }

        if (table.TryGetRecent(transactionId, out var outcome))
        {
            var state = outcome.Kind switch
            {
                OutcomeKind.Committed => TransactionState.Committed,
                OutcomeKind.RolledBack => TransactionState.RolledBack,
                _ => TransactionState.Heuristic,
            };
            return new TransactionStatus(transactionId, state, outcome, null);
        }

        return new TransactionStatus(transactionId, TransactionState.Unknown, null, null);
    }

    /// <summary>Unacknowledged phase-2 branches, then what the last recovery pass left alone; oldest first.</summary>
    public IReadOnlyList<InDoubtReport> GetInDoubt()
    {
        var now = time.GetUtcNow();
        var reports = new List<InDoubtReport>();
        foreach (var progress in table.PhaseTwo)
        {
            var age = now > progress.DecidedAt ? now - progress.DecidedAt : TimeSpan.Zero;
            for (var i = 0; i < progress.Branches.Count; i++)
            {
                if (!progress.IsAcknowledged(i))
                {
                    var branch = progress.Branches[i];
                    var decision = progress.Logged ? "commit decision logged" : "committing its only prepared branch (no decision record)";
                    var detail = progress.LastError(i) is { } error ? $"{decision}; phase 2 retrying, last error: {error}" : $"{decision}; phase 2 in progress";
                    reports.Add(new InDoubtReport(branch.ResourceManager, branch.Xid, InDoubtResolution.Committing, age, detail));
                }
            }
        }

        reports.AddRange(recovery.LeftAlone(now));
        return [.. reports.OrderByDescending(r => r.Age)];
    }

    private static BranchReport[] PhaseTwoBranches(PhaseTwoProgress progress) =>
        [.. progress.Branches.Select((b, i) => new BranchReport(b.ResourceManager, b.Xid, VoteKind.Yes, progress.IsAcknowledged(i) ? BranchOutcome.Committed : null))];
}
