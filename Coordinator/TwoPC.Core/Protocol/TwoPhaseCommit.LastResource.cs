using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Polly;
using Polly.Retry;
using TwoPC.Diagnostics;
using TwoPC.Durability;
using TwoPC.Participants;
using TwoPC.Transactions;
using TwoPC.Wal;

namespace TwoPC.Protocol;

/// <summary>
/// The last-resource commit with a commit marker (docs/design/last-resource-commit.md). One branch, the last resource
/// L (a branch of an <see cref="ICommitMarkerStore"/>, chosen when it enlisted), is never prepared; its one-phase
/// <c>COMMIT</c>, with a <c>'C'</c> marker row for the global transaction inserted in the same local transaction, is the
/// commit decision. Nothing is forced to the coordinator's log.
/// </summary>
/// <remarks>
/// <para><b>Steps</b> (<see cref="CommitWithLastResourceAsync"/>):</para>
/// <list type="number">
/// <item>Applies when the option is on, there are two or more branches, L is among them, and every other branch's XID
/// carries L's name hash (<see cref="LastResourceXid"/>: <c>{n:x}.m{h}</c>), so recovery knows where the decision lives.
/// Otherwise the present protocol runs.</item>
/// <item>Phase 1: prepare every other branch, as in the present protocol. Any No, failure or timeout → roll back every
/// branch, L included (a plain rollback of its local transaction). Nothing is logged.</item>
/// <item>The decision: in L's open transaction, one batch: insert the marker (its payload the intentions list, encoded
/// as a logged commit decision) only while the deadline has not passed on L's own clock, and <c>COMMIT</c>.
/// Committed → phase 2. Refused (deadline passed, or a fence exists) → L rolled back → roll back every prepared branch.
/// The answer lost → fence (R3) on another connection, retried until it answers: <c>'C'</c> → phase 2; <c>'A'</c> → roll back.</item>
/// <item>Phase 2 exactly as the present protocol's (commit every prepared branch until it answers), then END to the
/// log unforced, and the marker queued for deletion in batches (<see cref="CommitMarkerJanitor"/>).</item>
/// </list>
/// <para><b>Recovery</b> (<c>RecoveryManager.LastResource.cs</c>): R1 — every pass reads the committed markers of this
/// node's transactions (not live here) and re-drives phase 2 from their payload, deleting the marker after every branch
/// acknowledged. R2 — an orphan whose XID names a last resource (no log decision, not live, older than the orphan safety
/// interval) is fenced in L's database: <c>'C'</c> → left to R1; <c>'A'</c> → rolled back; L unreachable → left in doubt.</para>
/// <para><b>Safety argument.</b> Claim: every branch of a last-resource transaction ends committed if and only if L's local
/// transaction committed with its <c>'C'</c> marker row; that happens at most once, never after anyone acted on "aborted".</para>
/// <list type="number">
/// <item>L's <c>'C'</c> row and L's own writes are in one local transaction: they commit together or not at all. The row
/// exists exactly when the transaction is committed.</item>
/// <item>Phase 2 and R1 commit a prepared branch only when the <c>'C'</c> row committed (phase 2: the COMMIT returned, or
/// the fence read <c>'C'</c>; R1: the row was read from the table). No branch commits unless the decision is committed.</item>
/// <item>A branch is rolled back only when (a) phase 1 failed before the marker — L never inserted <c>'C'</c> and is rolled
/// back too; (b) the marker insert was refused or L's transaction aborted — no <c>'C'</c> row can ever exist, because L's
/// transaction is gone and a global transaction id is never reused (node, epoch, sequence); or (c) a fence read <c>'A'</c>.</item>
/// <item>The fence makes "absent" final. The transaction id is the marker table's primary key. If L has inserted
/// <c>'C'</c> but not committed, the fence's insert waits on the unique index until L ends: committed → conflict, the fence
/// reads <c>'C'</c> (commit); aborted → the fence inserts <c>'A'</c>. If L has not inserted yet, the fence commits <c>'A'</c>
/// first and L's insert violates the key, so L's COMMIT fails (3b). Both rows can never exist; whichever does is permanent
/// until deleted.</item>
/// <item>Deletion cannot reopen the race: a <c>'C'</c> row is deleted only after every branch acknowledged; an <c>'A'</c>
/// row is kept longer than any transaction can stay open, because L's insert succeeds only before the deadline on L's clock.</item>
/// <item>A coordinator paused after phase 1 and resumed after recovery fenced its transaction: its marker insert hits the
/// <c>'A'</c> row (or the deadline), L rolls back, and it rolls back its prepared branches — which R2 already rolled back.</item>
/// <item>A crash anywhere: before the marker, no <c>'C'</c> → orphans are fenced and rolled back; during it → the fence
/// decides (4); after it → the <c>'C'</c> row drives R1 until every branch acknowledged.</item>
/// </list>
/// </remarks>
internal sealed partial class TwoPhaseCommit
{
    /// <summary>The marker payload's format: this byte, then the intentions list as the log encodes a commit decision.</summary>
    private const byte PayloadFormat = 1;

    private readonly ResiliencePipeline<MarkerState> _fenceRetry = new ResiliencePipelineBuilder<MarkerState> { TimeProvider = time }
        .AddRetry(new RetryStrategyOptions<MarkerState>
        {
            // The fence answers exactly or fails; retried until it answers (only shutdown stops it: the orphan is then R2's).
            ShouldHandle = static args => ValueTask.FromResult(args.Outcome.Exception is not null && !args.Context.CancellationToken.IsCancellationRequested),
            MaxRetryAttempts = int.MaxValue,
            BackoffType = DelayBackoffType.Exponential,
            UseJitter = true,
            Delay = options.RetryBaseDelay,
            MaxDelay = options.RetryMaxDelay,
        })
        .AddTimeout(options.BranchCallTimeout)
        .Build();

    /// <summary>The marker payload of <paramref name="decision"/>.</summary>
    internal static ReadOnlyMemory<byte> EncodePayload(CommitDecision decision)
    {
        var buffer = new byte[1 + TransactionRecordCodec.MaxCommitDecisionLength(decision)];
        buffer[0] = PayloadFormat;
        var length = TransactionRecordCodec.CommitDecisionEncoder(decision, buffer.AsSpan(1));
        return buffer.AsMemory(0, 1 + length);
    }

    /// <summary>The intentions list of a marker payload.</summary>
    /// <exception cref="FormatException">Not a payload this version wrote.</exception>
    internal static CommitDecision DecodePayload(ReadOnlySpan<byte> payload) =>
        payload.Length > 1 && payload[0] == PayloadFormat
            ? TransactionRecordCodec.DecodeCommitDecision(payload[1..])
            : throw new FormatException($"unknown commit marker payload format {(payload.IsEmpty ? "(empty)" : payload[0].ToString(System.Globalization.CultureInfo.InvariantCulture))}");

    /// <summary>
    /// Recovery (R1) found a committed marker of a transaction nobody here drives: re-drive its phase 2 in the background,
    /// listed as recovering, and delete the marker once every branch acknowledged. False when this process already drives it.
    /// </summary>
    public bool TryRedriveMarker(ICommitMarkerStore store, CommitDecision decision, Func<string, IResourceManager?> find)
    {
        var id = decision.TransactionId;
        if (!markers.Track(store, id))
        {
            return false;
        }

        var phaseTwo = new TaskCompletionSource<TransactionOutcome>(TaskCreationOptions.RunContinuationsAsynchronously);
        table.AddRecovering(id, phaseTwo.Task);
        lastResourceMetrics.MarkersRedriven.Add(1);
        _ = Task.Run(
            async () =>
            {
                try
                {
                    var outcome = await CommitPreparedAsync(id, decision.Branches, i => find(decision.Branches[i].ResourceManager), logged: true, reports: null, time.GetTimestamp(), decision.DecidedAt).ConfigureAwait(false);
                    metrics.RecoveredCommits.Add(decision.Branches.Count);

                    // Queued for deletion before the re-drive is seen finished (a shutdown waits for it, then sweeps).
                    markers.Release(id, delete: outcome.Kind == OutcomeKind.Committed);
                    phaseTwo.TrySetResult(outcome);
                }
                catch (Exception ex)
                {
                    markers.Release(id, delete: false);
                    phaseTwo.TrySetException(ex);
                }
            },
            CancellationToken.None);
        return true;
    }

    /// <summary>The index of the last resource when the last-resource commit applies to <paramref name="branches"/>, else null.</summary>
    private int? LastResourceOf(GlobalTransaction tx, EnlistedBranch[] branches)
    {
        if (!options.LastResourceCommit || branches.Length < 2 || tx.LastResource is not { } last || last.ResourceManager is not ICommitMarkerStore)
        {
            return null;
        }

        int? index = null;
        for (var i = 0; i < branches.Length; i++)
        {
            if (branches[i].Xid == last.Xid && ReferenceEquals(branches[i].ResourceManager, last.ResourceManager))
            {
                index = i;
            }
            else if (!LastResourceXid.TryGetHash(branches[i].Xid, out var hash) || hash != last.Hash)
            {
                // Enlisted before the last resource (or without telling its resource manager): recovery could not find
                // the decision of this branch, so the present protocol logs it.
                return null;
            }
        }

        return index;
    }

    private async Task<TransactionOutcome> CommitWithLastResourceAsync(GlobalTransaction tx, EnlistedBranch[] branches, int lastIndex, long started, CancellationToken cancellationToken)
    {
        var last = branches[lastIndex];
        var store = (ICommitMarkerStore)last.ResourceManager;
        Activity.Current?.SetTag("twopc.last_resource", last.ResourceManager.Name);

        // Phase 1, without the last resource. Its PrepareResult stays empty: a rollback ends it as a live branch.
        var others = new EnlistedBranch[branches.Length - 1];
        for (int i = 0, j = 0; i < branches.Length; i++)
        {
            if (i != lastIndex)
            {
                others[j++] = branches[i];
            }
        }

        logger.LastResourceChosen(tx.Id, last.ResourceManager.Name, others.Length);
        var otherVotes = await PrepareAllAsync(tx, others, cancellationToken).ConfigureAwait(false);
        metrics.PrepareDuration.Record(time.GetElapsedTime(started).TotalSeconds);
        var votes = new PrepareResult[branches.Length];
        for (int i = 0, j = 0; i < branches.Length; i++)
        {
            if (i != lastIndex)
            {
                votes[i] = otherVotes[j++];
                if (votes[i].Vote?.Kind is not (VoteKind.Yes or VoteKind.ReadOnly))
                {
                    var reason = votes[i].Vote?.Kind == VoteKind.No
                        ? $"branch {branches[i].Xid} ({branches[i].ResourceManager.Name}) voted no: {votes[i].Vote!.Reason}"
                        : $"branch {branches[i].Xid} ({branches[i].ResourceManager.Name}) failed to prepare: {votes[i].Error?.Message ?? "no answer"}";
                    return await RollBackAsync(tx, branches, votes, reason, started).ConfigureAwait(false);
                }
            }
        }

        var yes = new List<LoggedBranch>(others.Length);
        var reports = new BranchReport[branches.Length];
        var resolved = new List<IResourceManager>(others.Length);
        for (var i = 0; i < branches.Length; i++)
        {
            var vote = votes[i].Vote;
            reports[i] = new BranchReport(branches[i].ResourceManager.Name, branches[i].Xid, vote?.Kind, null);
            if (vote?.Kind == VoteKind.Yes)
            {
                yes.Add(new LoggedBranch(branches[i].ResourceManager.Name, branches[i].Xid, vote.RecoveryData));
                resolved.Add(branches[i].ResourceManager);
            }
        }

        if (yes.Count == 0)
        {
            // Every other branch was read-only: the last resource alone commits, in one phase, without a marker.
            return await CommitOnePhaseAsync(tx, last, started, reports, lastIndex).ConfigureAwait(false);
        }

        if (time.GetUtcNow() >= tx.Deadline)
        {
            logger.DeadlinePassed(tx.Id, tx.Deadline);
            return await RollBackAsync(tx, branches, votes, "the deadline passed before the commit decision", started).ConfigureAwait(false);
        }

        // The decision: the last resource's COMMIT with its marker.
        var decidedAt = time.GetUtcNow();
        var payload = EncodePayload(new CommitDecision(tx.Id, decidedAt, yes));
        await StepAsync(ProtocolStep.BeforeMarkerCommit, tx.Id, 0).ConfigureAwait(false);
        var refusal = await DecideAsync(tx, store, last, payload).ConfigureAwait(false);
        if (refusal is not null)
        {
            return await RollBackAsync(tx, branches, votes, refusal, started).ConfigureAwait(false);
        }

        await StepAsync(ProtocolStep.AfterMarkerCommit, tx.Id, 0).ConfigureAwait(false);
        logger.MarkerCommitted(tx.Id, last.ResourceManager.Name, yes.Count);

        // Phase 2, as in the present protocol; the marker stays until every branch acknowledged.
        tx.SetState(TransactionState.Committing);
        reports[lastIndex] = reports[lastIndex] with { Outcome = BranchOutcome.Committed };
        markers.Track(store, tx.Id);
        var delete = false;
        try
        {
            var outcome = await CommitPreparedAsync(tx.Id, yes, i => resolved[i], logged: true, reports, started, decidedAt).ConfigureAwait(false);
            delete = outcome.Kind == OutcomeKind.Committed;
            tx.SetState(delete ? TransactionState.Committed : TransactionState.Heuristic);
            return outcome;
        }
        finally
        {
            markers.Release(tx.Id, delete);
        }
    }

    /// <summary>Commits the last resource with its marker: null when committed, else why it rolled back. Throws when even the fence could not tell (shutdown).</summary>
    private async Task<string?> DecideAsync(GlobalTransaction tx, ICommitMarkerStore store, EnlistedBranch last, ReadOnlyMemory<byte> payload)
    {
        using var activity = TwoPCTelemetry.ActivitySource.StartActivity("twopc.branch.commit_with_marker", ActivityKind.Client);
        activity?.SetTag("twopc.xid", last.Xid.ToString());
        activity?.SetTag("twopc.resource_manager", last.ResourceManager.Name);
        var committing = time.GetTimestamp();
        try
        {
            // Not the caller's token: a commit cancelled half-way would leave its outcome to the fence.
            using var timeout = new CancellationTokenSource(options.BranchCallTimeout, time);
            var result = await store.CommitWithMarkerAsync(last.Branch, tx.Id, tx.Deadline, payload, timeout.Token).ConfigureAwait(false);
            lastResourceMetrics.CommitDuration.Record(time.GetElapsedTime(committing).TotalSeconds);
            if (result.Committed)
            {
                lastResourceMetrics.Commits.Add(1, new KeyValuePair<string, object?>("outcome", "committed"));
                activity?.SetTag("twopc.branch.outcome", "Committed");
                return null;
            }

            var reason = $"the last resource {last.Xid} ({last.ResourceManager.Name}) refused the commit: {result.Reason}";
            lastResourceMetrics.Commits.Add(1, new KeyValuePair<string, object?>("outcome", "refused"));
            logger.MarkerRefused(tx.Id, last.ResourceManager.Name, result.Reason ?? "no reason");
            activity?.SetTag("twopc.branch.outcome", "RolledBack");
            return reason;
        }
        catch (Exception ex)
        {
            // R3: the answer was lost. Until the fence answers the transaction is in doubt; the fence decides exactly.
            logger.MarkerCommitUnknown(ex, tx.Id, last.ResourceManager.Name);
            activity?.SetStatus(ActivityStatusCode.Error, ex.Message);
            tx.SetState(TransactionState.InDoubt);
            var state = await FenceAsync(store, tx.Id, stopping).ConfigureAwait(false);
            lastResourceMetrics.Commits.Add(1, new KeyValuePair<string, object?>("outcome", state == MarkerState.Committed ? "fenced_committed" : "fenced_aborted"));
            return state == MarkerState.Committed
                ? null
                : $"the answer to the last resource's commit ({last.ResourceManager.Name}) was lost and the fence found it did not commit: {ex.Message}";
        }
    }

    /// <summary>Fences <paramref name="id"/> in <paramref name="store"/>, retried until it answers or <paramref name="cancellationToken"/> is cancelled.</summary>
    internal async Task<MarkerState> FenceAsync(ICommitMarkerStore store, GlobalTransactionId id, CancellationToken cancellationToken)
    {
        var name = ((IResourceManager)store).Name;
        var state = await _fenceRetry.ExecuteAsync(
            async ct =>
            {
                try
                {
                    return await store.FenceAsync(id, ct).ConfigureAwait(false);
                }
                catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
                {
                    lastResourceMetrics.Fences.Add(1, new KeyValuePair<string, object?>("result", "failed"));
                    logger.FenceFailed(ex, id, name);
                    throw;
                }
            },
            cancellationToken).ConfigureAwait(false);
        lastResourceMetrics.Fences.Add(1, new KeyValuePair<string, object?>("result", state == MarkerState.Committed ? "committed" : "aborted"));
        logger.Fenced(id, name, state);
        return state;
    }
}
