using Microsoft.Extensions.Logging;
using TwoPC.Diagnostics;
using TwoPC.Durability;
using TwoPC.Participants;
using TwoPC.Recovery;
using TwoPC.Transactions;

namespace TwoPC.Protocol;

// The operator's hand resolution of last-resource transactions: their decision is the commit marker in the last
// resource their prepared branches' XIDs name (LastResourceXid), not a record in the log (TwoPhaseCommit.LastResource.cs).
internal sealed partial class ForcedResolution
{
    /// <summary>
    /// The rule for a branch of a last-resource transaction this coordinator has no record of: fence the transaction in
    /// every registered commit-markable resource manager whose name hashes to <paramref name="hash"/> (normally one; on a
    /// collision an <c>'A'</c> row where the transaction never was is harmless), then judge by what the fence reads.
    /// </summary>
    private async Task<FenceVerdict> FenceAsync(ForcedAction action, string name, Xid xid, GlobalTransactionId id, uint hash, CancellationToken cancellationToken)
    {
        var stores = resourceManagers.MarkerStoresFor(hash);
        if (stores.Count == 0)
        {
            return FenceVerdict.Refused(
                $"Branch {xid} belongs to a last-resource transaction this coordinator has no record of: its decision is the commit marker in the last resource its XID names (name hash {hash:x8}), and no registered commit-markable resource manager has that name. Register that resource manager so the marker can be consulted.");
        }

        string? committedIn = null;
        ICommitMarkerStore? committedStore = null;
        foreach (var store in stores)
        {
            var storeName = ((IResourceManager)store).Name;
            MarkerState state;
            try
            {
                using var timeout = new CancellationTokenSource(fenceTimeout, time);
                using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, cancellationToken);
                state = await store.FenceAsync(id, linked.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                CountFence("failed");
                logger.FenceFailed(ex, id, storeName);
                return FenceVerdict.Failed(
                    $"Transaction {id} has no record here and its decision is the commit marker in its last resource '{storeName}', but fencing it there failed, so its decision is unknown and branch {xid} was not touched: {ex.Message}", ex);
            }

            CountFence(state == MarkerState.Committed ? "committed" : "aborted");
            logger.Fenced(id, storeName, state);
            if (state == MarkerState.Committed && committedStore is null)
            {
                (committedIn, committedStore) = (storeName, store);
            }
        }

        if (committedStore is null)
        {
            return action == ForcedAction.Commit
                ? FenceVerdict.Refused($"Transaction {id} is fenced as aborted in its last resource ('A' marker in '{((IResourceManager)stores[0]).Name}'): it did not commit and now never can, so a forced commit would break atomicity (the override does not apply: the fence is a recorded abort).")
                : FenceVerdict.Allowed(default);
        }

        if (action == ForcedAction.Rollback)
        {
            return FenceVerdict.Refused($"Transaction {id} committed: its last resource '{committedIn}' holds its commit marker ('C'); a forced rollback would break atomicity (force a commit instead).");
        }

        // The branch's recovery data (a remote participant's callback URL) is in the marker's payload, the intentions list.
        try
        {
            return FenceVerdict.Allowed(await RecoveryDataAsync(committedStore, id, name, xid, cancellationToken).ConfigureAwait(false));
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            return FenceVerdict.Failed(
                $"Transaction {id} committed (its last resource '{committedIn}' holds its commit marker), but reading the marker's intentions list for branch {xid}'s recovery data failed; branch {xid} was not touched: {ex.Message}", ex);
        }
    }

    /// <summary>The recovery data the committed marker of <paramref name="id"/> lists for the branch; empty when the marker does not list it (or is gone).</summary>
    private async Task<ReadOnlyMemory<byte>> RecoveryDataAsync(ICommitMarkerStore store, GlobalTransactionId id, string name, Xid xid, CancellationToken cancellationToken)
    {
        // Markers are read in text order after a key: start just below this id ('~' sorts after every character an id
        // has), so the first marker read is this transaction's when it exists.
        var text = id.ToString();
        var below = string.Concat(text.AsSpan(0, text.Length - 1), [(char)(text[^1] - 1), '~']);
        using var timeout = new CancellationTokenSource(fenceTimeout, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, cancellationToken);
        var read = await store.ReadCommittedMarkersAsync(below, 1, linked.Token).ConfigureAwait(false);
        if (read.Count == 0 || read[0].TransactionId != id)
        {
            return default;
        }

        var decision = TwoPhaseCommit.DecodePayload(read[0].Payload.Span);
        return decision.Branches.FirstOrDefault(b => b.Xid == xid && string.Equals(b.ResourceManager, name, StringComparison.Ordinal))?.RecoveryData ?? default;
    }

    /// <summary>
    /// The commit-markable resource managers holding the marker of <paramref name="record"/>'s transaction, found from
    /// its branches' XIDs; none for a transaction of the present protocol.
    /// </summary>
    /// <exception cref="InvalidOperationException">An XID names a last resource that is not registered.</exception>
    private List<ICommitMarkerStore> MarkerStoresOf(HeuristicRecord record)
    {
        var stores = new List<ICommitMarkerStore>();
        foreach (var hash in record.Branches.Select(b => LastResourceXid.TryGetHash(b.Xid, out var h) ? h : (uint?)null).OfType<uint>().Distinct())
        {
            var found = resourceManagers.MarkerStoresFor(hash);
            if (found.Count == 0)
            {
                throw new InvalidOperationException(
                    $"Transaction {record.TransactionId} was a last-resource transaction: its commit marker is in the last resource its branches' XIDs name (name hash {hash:x8}), and no registered commit-markable resource manager has that name. Register it so forgetting the heuristic outcome also deletes the marker (recovery would re-drive the transaction from it otherwise); nothing was done.");
            }

            stores.AddRange(found);
        }

        return stores;
    }

    /// <summary>Deletes the committed marker of <paramref name="id"/> in each of <paramref name="stores"/> (no marker there is fine).</summary>
    private async Task DeleteMarkerAsync(GlobalTransactionId id, List<ICommitMarkerStore> stores, CancellationToken cancellationToken)
    {
        foreach (var store in stores)
        {
            await store.DeleteMarkersAsync([id], cancellationToken).ConfigureAwait(false);
            logger.MarkersDeleted(1, ((IResourceManager)store).Name);
        }
    }

    private void CountFence(string result) =>
        recovery.LastResource?.Metrics.Fences.Add(1, new KeyValuePair<string, object?>("result", result));

    /// <summary>What the fence allows: a refusal, or a failure (the decision is unknown), or go ahead with the recovery data.</summary>
    private readonly record struct FenceVerdict(string? Refusal, ReadOnlyMemory<byte> RecoveryData, string? FailureMessage, Exception? Error)
    {
        public static FenceVerdict Refused(string reason) => new(reason, default, null, null);

        public static FenceVerdict Failed(string message, Exception error) => new(null, default, message, error);

        public static FenceVerdict Allowed(ReadOnlyMemory<byte> recoveryData) => new(null, recoveryData, null, null);
    }
}
