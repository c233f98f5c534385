using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using TwoPC.Diagnostics;
using TwoPC.Participants;
using TwoPC.Transactions;

namespace TwoPC.Protocol;

/// <summary>
/// The commit markers this process is driving, and the deletion of finished ones in batches, off the hot path.
/// A marker is tracked from the moment its phase 2 starts (in the normal path or re-driven by recovery) until it is
/// released; recovery's marker scan skips tracked markers. Released after every branch acknowledged → queued for
/// deletion; otherwise it stays: after a shutdown a later scan finds it and re-drives it; after a heuristic outcome the
/// scan skips it while the heuristic is on record (the operator owns it), and forgetting the heuristic deletes it.
/// </summary>
internal sealed class CommitMarkerJanitor(LastResourceMetrics metrics, ILogger logger)
{
    /// <summary>How many markers one DELETE removes at most.</summary>
    internal const int BatchSize = 1000;

    private readonly ConcurrentDictionary<GlobalTransactionId, ICommitMarkerStore> _tracked = new();
    private readonly ConcurrentQueue<(ICommitMarkerStore Store, GlobalTransactionId Id)> _finished = new();

    /// <summary>Markers finished and not deleted yet.</summary>
    public int PendingDeletion => _finished.Count;

    /// <summary>Starts driving the marker of <paramref name="id"/>; false when this process already drives it.</summary>
    public bool Track(ICommitMarkerStore store, GlobalTransactionId id) => _tracked.TryAdd(id, store);

    public bool IsTracked(GlobalTransactionId id) => _tracked.ContainsKey(id);

    /// <summary>Phase 2 of <paramref name="id"/> ended; <paramref name="delete"/> when every branch acknowledged.</summary>
    public void Release(GlobalTransactionId id, bool delete)
    {
        if (_tracked.TryGetValue(id, out var store) && delete)
        {
            // Queued before it is untracked: a scan in between must not see it as nobody's.
            _finished.Enqueue((store, id));
            return; // untracked when deleted
        }

        _tracked.TryRemove(id, out _);
    }

    /// <summary>Deletes every finished marker queued so far, a batch per store at a time; a failed batch is queued again.</summary>
    public async Task DeleteFinishedAsync(CancellationToken cancellationToken)
    {
        var batches = new Dictionary<ICommitMarkerStore, List<GlobalTransactionId>>(ReferenceEqualityComparer.Instance);
        var count = _finished.Count;
        while (count-- > 0 && _finished.TryDequeue(out var item))
        {
            if (!batches.TryGetValue(item.Store, out var ids))
            {
                batches[item.Store] = ids = [];
            }

            ids.Add(item.Id);
        }

        foreach (var (store, ids) in batches)
        {
            foreach (var chunk in ids.Chunk(BatchSize))
            {
                try
                {
                    await store.DeleteMarkersAsync(chunk, cancellationToken).ConfigureAwait(false);
                    metrics.MarkersDeleted.Add(chunk.Length);
                    foreach (var id in chunk)
                    {
                        _tracked.TryRemove(id, out _);
                    }

                    logger.MarkersDeleted(chunk.Length, ((IResourceManager)store).Name);
                }
                catch (Exception ex)
                {
                    logger.MarkerDeletionFailed(ex, chunk.Length, ((IResourceManager)store).Name);
                    foreach (var id in chunk)
                    {
                        _finished.Enqueue((store, id));
                    }

                    if (cancellationToken.IsCancellationRequested)
                    {
                        return;
                    }
                }
            }
        }
    }

    /// <summary>Deletes finished markers every <paramref name="period"/> until <paramref name="stopping"/>, then once more.</summary>
    public async Task RunAsync(TimeSpan period, TimeProvider time, CancellationToken stopping)
    {
        using var timer = new PeriodicTimer(period, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stopping).ConfigureAwait(false))
            {
                await DeleteFinishedAsync(stopping).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
        }

        // A last sweep at shutdown, briefly: what it misses, the next start's marker scan finds (and re-drives idempotently).
        using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        await DeleteFinishedAsync(grace.Token).ConfigureAwait(false);
    }
}
