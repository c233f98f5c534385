// Longer than 400 lines on purpose: the protocol reads top to bottom in one file (the rules in the remarks, then
// CommitAsync, then its steps); splitting it would scatter the one method a reviewer must check. The last-resource
// commit, a protocol of its own that shares the steps, is in TwoPhaseCommit.LastResource.cs.
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using TwoPC.Diagnostics;
using TwoPC.Durability;
using TwoPC.Participants;
using TwoPC.Transactions;

namespace TwoPC.Protocol;

/// <summary>
/// The two-phase commit protocol with presumed abort, for one global transaction at a time. Read it
/// top to bottom: <see cref="CommitAsync"/> is the whole protocol; the methods below it are its steps.
/// </summary>
/// <remarks>
/// <list type="number">
/// <item>Last-resource commit (<see cref="TransactionCoordinatorOptions.LastResourceCommit"/>): when a branch was chosen
/// as the last resource at enlist and every other branch's XID names it, the decision is that branch's one-phase
/// <c>COMMIT</c> with a marker row, not a log record: see <c>TwoPhaseCommit.LastResource.cs</c>, whose safety argument
/// reads like this list. Otherwise the steps below run unchanged.</item>
/// <item>No branch → committed. One branch whose resource commits atomically (<see cref="IResourceManager.CommitsAtomically"/>)
/// → commit it in one phase, log nothing. Any other lone branch (a publisher, a remote participant) goes through
/// both phases below, so that its commit is logged and retried until acknowledged.</item>
/// <item>Phase 1: prepare every branch in parallel, bounded by the transaction's deadline. Any No,
/// failure or timeout → roll back every branch; a rollback is never logged (presumed abort).</item>
/// <item>All read-only → committed, log nothing. Deadline passed → roll back (never log a commit
/// decision late: recovery may already presume the transaction aborted).</item>
/// <item>Force one commit-decision record, unless exactly one branch voted Yes (the others read-only)
/// and its resource commits atomically: if we crash before that commit, presumed abort rolls it back,
/// which is atomic too. A non-atomic commit (N confirmed publishes) must be re-driven from the log.</item>
/// <item>Phase 2: commit every Yes branch in parallel, retrying each until it answers, independent of
/// the caller's cancellation. All committed → append END without forcing. Anything else is a
/// heuristic outcome: forced to the log and kept until an operator forgets it.</item>
/// </list>
/// </remarks>
internal sealed partial class TwoPhaseCommit(
    TransactionCoordinatorOptions options,
    ITransactionLog log,
    BranchCalls calls,
    TransactionTable table,
    CoordinatorMetrics metrics,
    ILogger logger,
    TimeProvider time,
    LastResourceMetrics lastResourceMetrics,
    CommitMarkerJanitor markers,
    CancellationToken stopping)
{
    public async Task<TransactionOutcome> CommitAsync(GlobalTransaction tx, EnlistedBranch[] branches, CancellationToken cancellationToken)
    {
        using var activity = TwoPCTelemetry.ActivitySource.StartActivity("twopc.commit");
        activity?.SetTag("twopc.transaction_id", tx.Id.ToString());
        activity?.SetTag("twopc.branches", branches.Length);
        var started = time.GetTimestamp();
        await StepAsync(ProtocolStep.BeforePrepare, tx.Id, 0).ConfigureAwait(false);

        if (branches.Length == 0)
        {
            return Finish(tx, OutcomeKind.Committed, null, [], started);
        }

        if (time.GetUtcNow() >= tx.Deadline)
        {
            logger.DeadlinePassed(tx.Id, tx.Deadline);
            return await RollBackAsync(tx, branches, new PrepareResult[branches.Length], "the transaction timed out before commit", started).ConfigureAwait(false);
        }

        if (branches.Length == 1 && branches[0].ResourceManager.CommitsAtomically)
        {
            return await CommitOnePhaseAsync(tx, branches[0], started).ConfigureAwait(false);
        }

        if (LastResourceOf(tx, branches) is { } last)
        {
            return await CommitWithLastResourceAsync(tx, branches, last, started, cancellationToken).ConfigureAwait(false);
        }

        // Phase 1.
        logger.Preparing(tx.Id, branches.Length);
        var votes = await PrepareAllAsync(tx, branches, cancellationToken).ConfigureAwait(false);
        metrics.PrepareDuration.Record(time.GetElapsedTime(started).TotalSeconds);
        for (var i = 0; i < votes.Length; i++)
        {
            if (votes[i].Vote?.Kind is not (VoteKind.Yes or VoteKind.ReadOnly))
            {
                var reason = votes[i].Vote?.Kind == VoteKind.No
                    ? $"branch {branches[i].Xid} ({branches[i].ResourceManager.Name}) voted no: {votes[i].Vote!.Reason}"
                    : $"branch {branches[i].Xid} ({branches[i].ResourceManager.Name}) failed to prepare: {votes[i].Error?.Message ?? "no answer"}";
                return await RollBackAsync(tx, branches, votes, reason, started).ConfigureAwait(false);
            }
        }

        // The decision.
        var yes = new List<LoggedBranch>(branches.Length);
        var reports = new BranchReport[branches.Length];
        for (var i = 0; i < branches.Length; i++)
        {
            var vote = votes[i].Vote!;
            reports[i] = new BranchReport(branches[i].ResourceManager.Name, branches[i].Xid, vote.Kind, null);
            if (vote.Kind == VoteKind.Yes)
            {
                yes.Add(new LoggedBranch(branches[i].ResourceManager.Name, branches[i].Xid, vote.RecoveryData));
            }
        }

        if (yes.Count == 0)
        {
            return Finish(tx, OutcomeKind.Committed, null, reports, started);
        }

        if (time.GetUtcNow() >= tx.Deadline)
        {
            logger.DeadlinePassed(tx.Id, tx.Deadline);
            return await RollBackAsync(tx, branches, votes, "the deadline passed before the commit decision", started).ConfigureAwait(false);
        }

        var logged = yes.Count > 1 || !branches[Array.FindIndex(votes, v => v.Vote!.Kind == VoteKind.Yes)].ResourceManager.CommitsAtomically;
        var decidedAt = time.GetUtcNow();
        if (logged)
        {
            var forcing = time.GetTimestamp();
            try
            {
                await log.LogCommitDecisionAsync(new CommitDecision(tx.Id, decidedAt, yes)).ConfigureAwait(false);
            }
            catch (NodeFencedException ex)
            {
                // A shared log refused the decision: another node took this one over and presumes abort for it. The
                // refusal is certain (nothing was stored), so rolling back here agrees with the taker.
                logger.DecisionLogFailed(ex, tx.Id);
                return await RollBackAsync(tx, branches, votes, "this coordinator node was fenced (another node took over its lease) before the commit decision was logged", started).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                // The record may or may not be on disk: the branches must stay prepared until a restart reads the log.
                logger.DecisionLogFailed(ex, tx.Id);
                tx.SetState(TransactionState.InDoubt);
                throw ex as TransactionLogFailedException
                    ?? new TransactionLogFailedException($"Transaction {tx.Id} is in doubt: forcing its commit decision failed. Its branches stay prepared until the coordinator restarts and recovery reads the log.", ex);
            }

            metrics.DecisionDuration.Record(time.GetElapsedTime(forcing).TotalSeconds);
            logger.DecisionLogged(tx.Id, yes.Count);
            await StepAsync(ProtocolStep.DecisionLogged, tx.Id, 0).ConfigureAwait(false);
        }

        // Phase 2: from here on the caller's cancellation no longer matters.
        tx.SetState(TransactionState.Committing);
        var resolved = new IResourceManager[yes.Count];
        for (int i = 0, j = 0; i < branches.Length; i++)
        {
            if (votes[i].Vote!.Kind == VoteKind.Yes)
            {
                resolved[j++] = branches[i].ResourceManager;
            }
        }

        var outcome = await CommitPreparedAsync(tx.Id, yes, i => resolved[i], logged, reports, started, decidedAt).ConfigureAwait(false);
        tx.SetState(outcome.Kind == OutcomeKind.Committed ? TransactionState.Committed : TransactionState.Heuristic);
        return outcome;
    }

    /// <summary>
    /// Phase 2 of a commit decision: commit every branch until it answers, then END (all committed) or a
    /// heuristic record. Recovery calls this for the decisions it finds in the log, with <paramref name="gates"/>
    /// bounding the calls in flight per resource manager. While it runs, the table lists its progress (which
    /// branches acknowledged) for operators and forced actions.
    /// </summary>
    public async Task<TransactionOutcome> CommitPreparedAsync(
        GlobalTransactionId id,
        IReadOnlyList<LoggedBranch> branches,
        Func<int, IResourceManager?> resolve,
        bool logged,
        BranchReport[]? reports,
        long started,
        DateTimeOffset decidedAt,
        RedriveGates? gates = null)
    {
        var progress = new PhaseTwoProgress(id, decidedAt, branches, logged);
        table.AddPhaseTwo(progress);
        try
        {
            return await CommitPreparedCoreAsync(id, branches, resolve, logged, reports, started, progress, gates).ConfigureAwait(false);
        }
        finally
        {
            table.RemovePhaseTwo(progress);
        }
    }

    private async Task<TransactionOutcome> CommitPreparedCoreAsync(
        GlobalTransactionId id,
        IReadOnlyList<LoggedBranch> branches,
        Func<int, IResourceManager?> resolve,
        bool logged,
        BranchReport[]? reports,
        long started,
        PhaseTwoProgress progress,
        RedriveGates? gates)
    {
        var phaseTwo = time.GetTimestamp();
        var outcomes = new Task<BranchOutcome>[branches.Count];
        var acknowledged = 0;
        for (var i = 0; i < branches.Count; i++)
        {
            outcomes[i] = CommitOneAsync(i);
        }

        await Task.WhenAll(outcomes).ConfigureAwait(false);
        metrics.CommitDuration.Record(time.GetElapsedTime(phaseTwo).TotalSeconds);

        reports ??= [.. branches.Select(b => new BranchReport(b.ResourceManager, b.Xid, VoteKind.Yes, null))];
        var committed = 0;
        var rolledBack = 0;
        var recoveryData = new ReadOnlyMemory<byte>[reports.Length];
        for (int i = 0, j = 0; i < reports.Length; i++)
        {
            if (reports[i].Vote == VoteKind.Yes)
            {
                recoveryData[i] = branches[j].RecoveryData;
                var outcome = outcomes[j++].Result;
                reports[i] = reports[i] with { Outcome = outcome };
                committed += outcome == BranchOutcome.Committed ? 1 : 0;
                rolledBack += outcome == BranchOutcome.RolledBack ? 1 : 0;
            }
        }

        if (committed == branches.Count)
        {
            if (logged)
            {
                try
                {
                    log.LogEnd(id);
                }
                catch (Exception ex) when (ex is TransactionLogFailedException or ObjectDisposedException)
                {
                    // END is optional (a missing one only repeats idempotent commits after a restart), so a
                    // failed log, or one a shutdown already closed, does not change an outcome every branch
                    // has acknowledged: the caller is told Committed.
                    logger.EndNotLogged(id, ex.Message);
                }

                await StepAsync(ProtocolStep.AfterEnd, id, 0).ConfigureAwait(false);
            }

            return Finish(id, OutcomeKind.Committed, null, reports, started);
        }

        var kind = rolledBack == branches.Count ? OutcomeKind.HeuristicRollback
            : committed + rolledBack == branches.Count ? OutcomeKind.HeuristicMixed
            : OutcomeKind.HeuristicHazard;
        return await RecordHeuristicAsync(id, kind, "the commit decision was logged but not every branch committed", reports, started, recoveryData).ConfigureAwait(false);

        async Task<BranchOutcome> CommitOneAsync(int index)
        {
            var branch = branches[index];
            var outcome = gates is null
                ? await calls.CommitAsync(branch.ResourceManager, () => resolve(index), branch.Xid, branch.RecoveryData, stopping, ex => progress.Failed(index, ex)).ConfigureAwait(false)
                : await calls.CommitAsync(branch.ResourceManager, () => resolve(index), branch.Xid, branch.RecoveryData, gates.For(branch.ResourceManager), stopping, ex => progress.Failed(index, ex)).ConfigureAwait(false);
            progress.Acknowledge(index);
            await StepAsync(ProtocolStep.AfterBranchCommitted, id, Interlocked.Increment(ref acknowledged)).ConfigureAwait(false);
            return outcome;
        }
    }

    /// <summary>An explicit rollback by the application (or the timeout reaper) of an active transaction.</summary>
    public Task<TransactionOutcome> RollbackAsync(GlobalTransaction tx, EnlistedBranch[] branches, string reason) =>
        RollBackAsync(tx, branches, new PrepareResult[branches.Length], reason, time.GetTimestamp());

    private async Task<PrepareResult[]> PrepareAllAsync(GlobalTransaction tx, EnlistedBranch[] branches, CancellationToken cancellationToken)
    {
        using var deadline = new CancellationTokenSource(tx.RemainingTime, time);
        using var callerCancelled = cancellationToken.UnsafeRegister(static state => ((CancellationTokenSource)state!).Cancel(), deadline);
        var token = deadline.Token;
        var voted = 0;
        var prepares = new Task<PrepareResult>[branches.Length];
        for (var i = 0; i < branches.Length; i++)
        {
            prepares[i] = PrepareOneAsync(branches[i]);
        }

        await Task.WhenAll(prepares).ConfigureAwait(false);
        var results = new PrepareResult[branches.Length];
        for (var i = 0; i < results.Length; i++)
        {
            results[i] = prepares[i].Result;
        }

        return results;

        async Task<PrepareResult> PrepareOneAsync(EnlistedBranch branch)
        {
            using var activity = TwoPCTelemetry.ActivitySource.StartActivity("twopc.branch.prepare", ActivityKind.Client);
            activity?.SetTag("twopc.xid", branch.Xid.ToString());
            activity?.SetTag("twopc.resource_manager", branch.ResourceManager.Name);
            PrepareResult result;
            try
            {
                var pending = branch.Branch.PrepareAsync(token);

                // A branch that ignores the token must not hold the transaction past its deadline.
                var vote = pending.IsCompleted ? pending.Result : await pending.AsTask().WaitAsync(token).ConfigureAwait(false);
                ArgumentNullException.ThrowIfNull(vote);
                if (vote.Kind == VoteKind.No)
                {
                    logger.BranchVotedNo(branch.Xid, branch.ResourceManager.Name, vote.Reason ?? string.Empty);
                }
                else
                {
                    logger.BranchVoted(branch.Xid, branch.ResourceManager.Name, vote.Kind);
                }

                activity?.SetTag("twopc.vote", vote.Kind.ToString());
                result = new PrepareResult(vote, null);
            }
            catch (Exception ex)
            {
                logger.BranchPrepareFailed(ex, branch.Xid, branch.ResourceManager.Name);
                activity?.SetStatus(ActivityStatusCode.Error, ex.Message);
                result = new PrepareResult(null, token.IsCancellationRequested && ex is OperationCanceledException
                    ? new TimeoutException(cancellationToken.IsCancellationRequested ? "the caller cancelled the commit" : "prepare did not finish before the transaction's deadline", ex)
                    : ex);
            }

            await StepAsync(ProtocolStep.AfterPrepare, tx.Id, Interlocked.Increment(ref voted)).ConfigureAwait(false);
            return result;
        }
    }

    /// <summary>
    /// Commits <paramref name="branch"/> in one phase. <paramref name="others"/>: the reports of the transaction's other
    /// branches (read-only votes, when a last resource is left alone), with the slot <paramref name="at"/> for this one.
    /// </summary>
    private async Task<TransactionOutcome> CommitOnePhaseAsync(GlobalTransaction tx, EnlistedBranch branch, long started, BranchReport[]? others = null, int at = 0)
    {
        logger.OnePhase(tx.Id);
        using var activity = TwoPCTelemetry.ActivitySource.StartActivity("twopc.branch.commit_one_phase", ActivityKind.Client);
        activity?.SetTag("twopc.xid", branch.Xid.ToString());
        activity?.SetTag("twopc.resource_manager", branch.ResourceManager.Name);
        tx.SetState(TransactionState.Committing);
        BranchOutcome outcome;
        try
        {
            // Not the caller's token: a one-phase commit cancelled half-way would leave its outcome unknown.
            using var timeout = new CancellationTokenSource(options.BranchCallTimeout, time);
            outcome = await branch.Branch.CommitOnePhaseAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            logger.OnePhaseFailed(ex, tx.Id, branch.Xid, branch.ResourceManager.Name);
            activity?.SetStatus(ActivityStatusCode.Error, ex.Message);
            var hazard = new BranchReport(branch.ResourceManager.Name, branch.Xid, null, BranchOutcome.Unknown);
            var result = await RecordHeuristicAsync(tx.Id, OutcomeKind.HeuristicHazard, $"one-phase commit of {branch.Xid} failed, outcome unknown: {ex.Message}", With(hazard), started).ConfigureAwait(false);
            tx.SetState(TransactionState.Heuristic);
            return result;
        }

        var report = new BranchReport(branch.ResourceManager.Name, branch.Xid, null, outcome);
        switch (outcome)
        {
            case BranchOutcome.Committed:
                return Finish(tx, OutcomeKind.Committed, null, With(report), started);
            case BranchOutcome.RolledBack:
                return Finish(tx, OutcomeKind.RolledBack, $"branch {branch.Xid} ({branch.ResourceManager.Name}) rolled back in its one-phase commit", With(report), started);
            default:
                var kind = outcome == BranchOutcome.Mixed ? OutcomeKind.HeuristicMixed : OutcomeKind.HeuristicHazard;
                var result = await RecordHeuristicAsync(tx.Id, kind, $"one-phase commit of {branch.Xid} answered {outcome}", With(report), started).ConfigureAwait(false);
                tx.SetState(TransactionState.Heuristic);
                return result;
        }

        BranchReport[] With(BranchReport report)
        {
            if (others is null)
            {
                return [report];
            }

            others[at] = report;
            return others;
        }
    }

    /// <summary>Rolls back every branch according to what it answered to prepare. Nothing is logged unless a branch reports it committed.</summary>
    private async Task<TransactionOutcome> RollBackAsync(GlobalTransaction tx, EnlistedBranch[] branches, PrepareResult[] votes, string reason, long started)
    {
        tx.SetState(TransactionState.RollingBack);
        var reports = new BranchReport[branches.Length];
        var rollbacks = new Task<BranchOutcome?>[branches.Length];
        for (var i = 0; i < branches.Length; i++)
        {
            rollbacks[i] = RollBackOneAsync(branches[i], votes[i].Vote);
        }

        await Task.WhenAll(rollbacks).ConfigureAwait(false);
        var committed = 0;
        for (var i = 0; i < branches.Length; i++)
        {
            var outcome = rollbacks[i].Result;
            committed += outcome is BranchOutcome.Committed or BranchOutcome.Mixed ? 1 : 0;
            reports[i] = new BranchReport(branches[i].ResourceManager.Name, branches[i].Xid, votes[i].Vote?.Kind, outcome);
        }

        if (committed > 0)
        {
            var kind = reports.All(r => r.Outcome is null or BranchOutcome.Committed) ? OutcomeKind.HeuristicCommit : OutcomeKind.HeuristicMixed;
            var result = await RecordHeuristicAsync(tx.Id, kind, $"rolled back ({reason}) but a branch reports it committed", reports, started, [.. votes.Select(v => v.Vote?.RecoveryData ?? default)]).ConfigureAwait(false);
            tx.SetState(TransactionState.Heuristic);
            return result;
        }

        return Finish(tx, OutcomeKind.RolledBack, reason, reports, started);

        async Task<BranchOutcome?> RollBackOneAsync(EnlistedBranch branch, Vote? vote)
        {
            try
            {
                return vote?.Kind switch
                {
                    // A No vote has rolled itself back; a read-only branch has nothing to undo.
                    VoteKind.No or VoteKind.ReadOnly => null,
                    VoteKind.Yes => await calls.RollbackPreparedAsync(branch.ResourceManager, branch.Xid, vote.RecoveryData, stopping).ConfigureAwait(false),
                    _ => await calls.RollbackLiveAsync(branch, stopping).ConfigureAwait(false),
                };
            }
            catch (Exception ex)
            {
                // Presumed abort: with no decision in the log, recovery rolls an orphaned prepared branch back later.
                logger.RollbackLeftToRecovery(ex, branch.Xid, branch.ResourceManager.Name);
                return null;
            }
        }
    }

    // recoveryData: each report's branch's recovery data (aligned with reports), kept in the record so a forced action can reach the branch.
    private async Task<TransactionOutcome> RecordHeuristicAsync(GlobalTransactionId id, OutcomeKind kind, string reason, BranchReport[] reports, long started, ReadOnlyMemory<byte>[]? recoveryData = null)
    {
        var record = new HeuristicRecord(id, time.GetUtcNow(), kind, reason,
            [.. reports.Select((r, i) => (r, i)).Where(x => x.r.Outcome is not null || x.r.Vote == VoteKind.Yes)
                .Select(x => new HeuristicBranch(x.r.ResourceManager, x.r.Xid, x.r.Outcome is BranchOutcome.Unknown ? null : x.r.Outcome, recoveryData?[x.i] ?? default))]);
        try
        {
            await log.LogHeuristicAsync(record).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // The caller and the in-memory table still learn of the heuristic; the log failure is fail-stop on its own.
            logger.DecisionLogFailed(ex, id);
        }

        table.AddHeuristic(record);
        logger.HeuristicOutcome(id, kind, record.Reason);
        return Finish(id, kind, record.Reason, reports, started);
    }

    private TransactionOutcome Finish(GlobalTransaction tx, OutcomeKind kind, string? reason, BranchReport[] reports, long started)
    {
        tx.SetState(kind switch
        {
            OutcomeKind.Committed => TransactionState.Committed,
            OutcomeKind.RolledBack => TransactionState.RolledBack,
            _ => TransactionState.Heuristic,
        });
        return Finish(tx.Id, kind, reason, reports, started);
    }

    private TransactionOutcome Finish(GlobalTransactionId id, OutcomeKind kind, string? reason, BranchReport[] reports, long started)
    {
        var outcome = new TransactionOutcome(id, kind, reason, reports);
        switch (kind)
        {
            case OutcomeKind.Committed:
                metrics.Committed.Add(1);
                logger.TransactionCommitted(id);
                break;
            case OutcomeKind.RolledBack:
                metrics.RolledBack.Add(1);
                logger.TransactionRolledBack(id, outcome.Reason ?? "rolled back");
                break;
            default:
                metrics.Heuristic.Add(1);
                break;
        }

        metrics.TransactionDuration.Record(time.GetElapsedTime(started).TotalSeconds);
        Activity.Current?.SetTag("twopc.outcome", kind.ToString());
        table.Complete(outcome);
        return outcome;
    }

    private ValueTask StepAsync(ProtocolStep step, GlobalTransactionId id, int index) =>
        options.StepHook is { } hook ? hook(step, id, index) : ValueTask.CompletedTask;

    internal readonly record struct PrepareResult(Vote? Vote, Exception? Error);
}
