using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using TwoPC.Diagnostics;
using TwoPC.Participants;
using TwoPC.Transactions;

namespace TwoPC.Recovery;

/// <summary>
/// Resolves branches that resource managers hold in doubt (the <c>xa_recover</c> half of recovery;
/// re-driving logged decisions is the protocol's <c>TwoPhaseCommit.CommitPreparedAsync</c>).
/// </summary>
/// <remarks>
/// A branch is rolled back (presumed abort) only when all hold: the XID has TwoPC's format and this
/// node's id; the log was read (the coordinator only starts after it was); no logged decision or
/// heuristic covers it; its transaction was not live when the pass began nor is now, and was begun
/// before the pass began; and it has been in doubt longer than the orphan safety interval.
/// A branch of this node's id that this coordinator cannot have begun (an epoch later than this start's,
/// or a sequence this epoch has not issued yet) proves a second coordinator with the same node id on
/// another log: it is reported, loudly, and never touched.
/// </remarks>
internal sealed partial class RecoveryManager(
    TimeSpan orphanSafetyInterval,
    TransactionIdAllocator ids,
    ResourceManagerRegistry resourceManagers,
    ITransactionRecords table,
    IOrphanRollback calls,
    CoordinatorMetrics metrics,
    ILogger logger,
    TimeProvider time,
    int orphanRollbackParallelism = RecoveryManager.DefaultOrphanRollbackParallelism) : IDisposable
{
    /// <summary>
    /// How many orphans one pass rolls back at a time. Each rollback is a round trip and, in a database, a flush of
    /// its own; one at a time, 2,000 orphans took seconds. Kept well below a database driver's default pool (Npgsql:
    /// 100) so the re-driven commits and the application still get connections.
    /// </summary>
    internal const int DefaultOrphanRollbackParallelism = 16;

    private readonly ConcurrentDictionary<string, DateTimeOffset> _firstSeen = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, bool> _conflictsReported = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<NodeId, ulong> _adopted = new();
    private readonly SemaphoreSlim _oneAtATime = new(1, 1);
    private readonly Lock _leftAloneGate = new();
    private (InDoubtReport Report, DateTimeOffset SeenAt)[] _leftAlone = [];

    public void Dispose() => _oneAtATime.Dispose();

    /// <summary>In-doubt branches the last pass left alone.</summary>
    public int LeftInDoubt
    {
        get
        {
            lock (_leftAloneGate)
            {
                return _leftAlone.Length;
            }
        }
    }

    /// <summary>The branches the last pass left alone, their age brought up to <paramref name="now"/> (no new scan).</summary>
    public IEnumerable<InDoubtReport> LeftAlone(DateTimeOffset now)
    {
        (InDoubtReport Report, DateTimeOffset SeenAt)[] snapshot;
        lock (_leftAloneGate)
        {
            snapshot = _leftAlone;
        }

        return snapshot.Select(e => e.Report with { Age = e.Report.Age + (now > e.SeenAt ? now - e.SeenAt : TimeSpan.Zero) });
    }

    /// <summary>An operator resolved a branch by hand: it is no longer listed as left alone.</summary>
    public void Resolved(string resourceManager, Xid xid)
    {
        lock (_leftAloneGate)
        {
            _leftAlone = [.. _leftAlone.Where(e => e.Report.Xid != xid || !string.Equals(e.Report.ResourceManager, resourceManager, StringComparison.Ordinal))];
        }

        _firstSeen.TryRemove(resourceManager + "/" + xid, out _);
    }

    /// <summary>
    /// This coordinator took over <paramref name="node"/> on a shared log: from now on its branches with an epoch up to
    /// <paramref name="fencedEpoch"/> are resolved here as if they were this node's own (the taker must have listed the
    /// node's logged decisions as recovering before calling this). Adopting again raises the epoch.
    /// </summary>
    public void Adopt(NodeId node, ulong fencedEpoch) =>
        _adopted.AddOrUpdate(node, fencedEpoch, (_, old) => Math.Max(old, fencedEpoch));

    /// <summary>The nodes this coordinator took over, with the epoch each was fenced at.</summary>
    public IReadOnlyDictionary<NodeId, ulong> Adopted => _adopted;

    /// <summary>Runs <paramref name="action"/> while no recovery pass runs (forced actions must not race a pass's decisions).</summary>
    public async Task<T> ExclusiveAsync<T>(Func<Task<T>> action, CancellationToken cancellationToken)
    {
        await _oneAtATime.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return await action().ConfigureAwait(false);
        }
        finally
        {
            _oneAtATime.Release();
        }
    }

    public async Task<RecoveryReport> RunPassAsync(CancellationToken cancellationToken)
    {
        await _oneAtATime.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            // Snapshot before scanning: a transaction that ends between the scan and our check must not look orphaned.
            var liveAtStart = table.SnapshotLive();
            await RedriveCommittedMarkersAsync(liveAtStart, cancellationToken).ConfigureAwait(false);
            var currentEpoch = ids.Epoch;
            var sequenceAtStart = ids.LastSequence;
            var reports = new List<InDoubtReport>();
            var orphans = new List<(int Report, IResourceManager ResourceManager, Xid Xid, TimeSpan Age)>();
            var failed = new List<string>();
            var seen = new HashSet<string>(StringComparer.Ordinal);

            foreach (var rm in resourceManagers.All)
            {
                IReadOnlyCollection<InDoubtBranch> inDoubt;
                try
                {
                    inDoubt = await rm.RecoverAsync(cancellationToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
                {
                    logger.ResourceScanFailed(ex, rm.Name);
                    failed.Add(rm.Name);
                    continue;
                }

                foreach (var branch in inDoubt)
                {
                    var key = rm.Name + "/" + branch.Xid;
                    seen.Add(key);
                    var now = time.GetUtcNow();
                    var firstSeen = _firstSeen.GetOrAdd(key, now);
                    var age = now - (branch.PreparedAt is { } prepared && prepared < firstSeen ? prepared : firstSeen);
                    var resolution = Classify(branch.Xid, age, liveAtStart, currentEpoch, sequenceAtStart, out var reason);
                    if (resolution == InDoubtResolution.NodeIdConflict)
                    {
                        if (_conflictsReported.TryAdd(key, true))
                        {
                            logger.NodeIdConflict(branch.Xid, rm.Name, ids.Node.Value, reason!);
                        }
                    }
                    else if (resolution == InDoubtResolution.RolledBack)
                    {
                        // Rolled back below, with the other orphans, a few at a time; the report is completed then.
                        orphans.Add((reports.Count, rm, branch.Xid, age));
                    }
                    else if (reason is not null)
                    {
                        logger.InDoubtLeftAlone(branch.Xid, rm.Name, reason);
                    }
                    else if (resolution == InDoubtResolution.TooYoung)
                    {
                        reason = "no decision on record; younger than the orphan safety interval (or begun during the pass), looked at again next pass";
                    }

                    reports.Add(new InDoubtReport(rm.Name, branch.Xid, resolution, age, reason));
                }
            }

            // Every orphan's fate was settled by the classification above (no decision, not live, old enough; none of that
            // can change for a transaction nobody is running), so the order of the rollbacks does not matter, and one that
            // fails (reported Failed, retried next pass) does not stop the others.
            await Parallel.ForEachAsync(
                orphans,
                new ParallelOptions { MaxDegreeOfParallelism = orphanRollbackParallelism, CancellationToken = cancellationToken },
                async (orphan, ct) =>
                {
                    var (resolution, reason) = await ResolveOrphanAsync(orphan.ResourceManager, orphan.Xid, orphan.Age, ct).ConfigureAwait(false);
                    lock (reports)
                    {
                        reports[orphan.Report] = reports[orphan.Report] with { Resolution = resolution, Detail = reason };
                    }
                }).ConfigureAwait(false);

            foreach (var key in _firstSeen.Keys)
            {
                if (!seen.Contains(key) && failed.TrueForAll(name => !key.StartsWith(name + "/", StringComparison.Ordinal)))
                {
                    _firstSeen.TryRemove(key, out _);
                }
            }

            var report = new RecoveryReport(reports, failed);
            var passEnded = time.GetUtcNow();
            lock (_leftAloneGate)
            {
                _leftAlone = [.. reports.Where(r => r.Resolution is not (InDoubtResolution.RolledBack or InDoubtResolution.Committing or InDoubtResolution.Live)).Select(r => (r, passEnded))];
            }

            var rolledBack = reports.Count(r => r.Resolution == InDoubtResolution.RolledBack);
            logger.RecoveryPassFinished(reports.Count, rolledBack, report.LeftInDoubt);
            return report;
        }
        finally
        {
            _oneAtATime.Release();
        }
    }

    /// <summary>
    /// Whether <paramref name="id"/> is this coordinator's to resolve (presume aborted, fence, re-drive from a marker): the
    /// one place recovery answers it: the transaction carries this node's id, or the id of a node this one took over on a
    /// shared log with an epoch the takeover fenced.
    /// </summary>
    internal bool IsOwn(GlobalTransactionId id) =>
        id.Node == ids.Node || (_adopted.TryGetValue(id.Node, out var fencedEpoch) && id.Epoch <= fencedEpoch);

    private InDoubtResolution Classify(Xid xid, TimeSpan age, HashSet<GlobalTransactionId> liveAtStart, ulong currentEpoch, ulong sequenceAtStart, out string? reason)
    {
        reason = null;
        if (xid.TryGetGlobalTransactionId() is not { } id)
        {
            reason = "not a branch of this coordinator node";
            return InDoubtResolution.Foreign;
        }

        if (id.Node != ids.Node)
        {
            return ClassifyAdopted(id, liveAtStart, out reason);
        }

        if (table.TryGetHeuristic(id, out _))
        {
            reason = "its transaction has a heuristic outcome on record; an operator must resolve it";
            return InDoubtResolution.Heuristic;
        }

        if (table.IsRecovering(id))
        {
            return InDoubtResolution.Committing;
        }

        if (liveAtStart.Contains(id) || table.IsLive(id))
        {
            return InDoubtResolution.Live;
        }

        if (id.Epoch > currentEpoch)
        {
            reason = $"its epoch {id.Epoch} is later than this coordinator's epoch {currentEpoch}: another coordinator is using node id {ids.Node.Value} on a different log (or this log was restored from an older copy)";
            return InDoubtResolution.NodeIdConflict;
        }

        if (id.Epoch == currentEpoch && id.Sequence > ids.LastSequence)
        {
            // Sequences are issued in order, so one above the last issued was begun by someone else.
            reason = $"its sequence {id.Sequence} was never issued in this coordinator's epoch {currentEpoch}: another coordinator is using node id {ids.Node.Value} on a different log";
            return InDoubtResolution.NodeIdConflict;
        }

        if (id.Epoch == currentEpoch && id.Sequence >= sequenceAtStart)
        {
            // Begun after this pass started: look again next pass.
            return InDoubtResolution.TooYoung;
        }

        if (age < orphanSafetyInterval)
        {
            return InDoubtResolution.TooYoung;
        }

        return InDoubtResolution.RolledBack;
    }

    /// <summary>
    /// A branch of another node: left alone unless this coordinator took that node over and the branch's epoch is one
    /// the takeover fenced. Then no process can log a decision for it any more (the shared log refuses the old epoch, and
    /// the decisions logged before the fence are listed as recovering), so no decision on record means presumed abort —
    /// without the orphan safety interval, which only guards this process's own transactions between prepare and decision.
    /// </summary>
    private InDoubtResolution ClassifyAdopted(GlobalTransactionId id, HashSet<GlobalTransactionId> liveAtStart, out string? reason)
    {
        reason = null;
        if (!_adopted.TryGetValue(id.Node, out var fencedEpoch))
        {
            reason = "not a branch of this coordinator node";
            return InDoubtResolution.Foreign;
        }

        if (id.Epoch > fencedEpoch)
        {
            reason = $"a branch of node {id.Node.Value}, which restarted after this node took it over (its epoch {id.Epoch} is later than the fenced {fencedEpoch})";
            return InDoubtResolution.Foreign;
        }

        if (table.TryGetHeuristic(id, out _))
        {
            reason = "its transaction has a heuristic outcome on record; an operator must resolve it";
            return InDoubtResolution.Heuristic;
        }

        // Live at the start of the pass covers a re-drive that finished between the scan and this check.
        return liveAtStart.Contains(id) || table.IsRecovering(id) ? InDoubtResolution.Committing : InDoubtResolution.RolledBack;
    }

    private async Task<(InDoubtResolution, string?)> RollBackOrphanAsync(IResourceManager rm, Xid xid, TimeSpan age, CancellationToken cancellationToken)
    {
        try
        {
            var outcome = await calls.RollbackPreparedAsync(rm, xid, ReadOnlyMemory<byte>.Empty, cancellationToken).ConfigureAwait(false);
            if (outcome is BranchOutcome.Committed or BranchOutcome.Mixed)
            {
                var reason = $"asked to roll back an orphan, the resource answered {outcome}";
                logger.InDoubtLeftAlone(xid, rm.Name, reason);
                return (InDoubtResolution.Failed, reason);
            }

            metrics.OrphansRolledBack.Add(1);
            logger.OrphanRolledBack(xid, rm.Name, age);
            _firstSeen.TryRemove(rm.Name + "/" + xid, out _);
            return (InDoubtResolution.RolledBack, null);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            logger.ResourceScanFailed(ex, rm.Name);
            return (InDoubtResolution.Failed, $"rolling back the orphan failed ({ex.Message}); retried next pass");
        }
    }
}
