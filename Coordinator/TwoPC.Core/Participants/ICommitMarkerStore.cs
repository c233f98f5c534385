using TwoPC.Transactions;

namespace TwoPC.Participants;

/// <summary>
/// Optionally implemented by a resource manager whose branches can carry the commit decision themselves: the
/// last-resource commit. The coordinator prepares every other branch, then commits this resource's branch in one
/// phase with a commit-marker row for the global transaction inserted in the same local transaction; that
/// <c>COMMIT</c> is the decision (see <c>TwoPC.Protocol.TwoPhaseCommit</c>, "Last-resource commit").
/// </summary>
/// <remarks>
/// The marker is keyed by the global transaction id and holds either <see cref="MarkerState.Committed"/> (written by
/// <see cref="CommitWithMarkerAsync"/>, with the payload) or <see cref="MarkerState.Aborted"/> (written by
/// <see cref="FenceAsync"/>). Whichever is written first is permanent until deleted: a fence blocks behind an
/// uncommitted marker and makes a later marker insert fail.
/// </remarks>
public interface ICommitMarkerStore
{
    /// <summary>
    /// Commits <paramref name="branch"/> (a live, never prepared branch of this resource manager) in one phase, with a
    /// committed marker for <paramref name="transactionId"/> carrying <paramref name="payload"/> inserted in the same
    /// local transaction — refused when <paramref name="deadline"/> has passed on the resource's own clock or a fence
    /// exists for the transaction.
    /// </summary>
    /// <returns>Committed, or refused (rolled back) with the reason.</returns>
    /// <exception cref="Exception">Any exception means the outcome is unknown (the answer to <c>COMMIT</c> was lost):
    /// the coordinator resolves it with <see cref="FenceAsync"/>.</exception>
    ValueTask<MarkerCommitOutcome> CommitWithMarkerAsync(ITransactionBranch branch, GlobalTransactionId transactionId, DateTimeOffset deadline, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken);

    /// <summary>
    /// Makes the fate of <paramref name="transactionId"/> final: inserts an <see cref="MarkerState.Aborted"/> marker unless a
    /// marker exists (waiting for a marker insert in flight to end), then reads the marker.
    /// </summary>
    /// <returns><see cref="MarkerState.Committed"/> when the transaction committed; otherwise <see cref="MarkerState.Aborted"/>, and
    /// no committed marker can ever be written for it.</returns>
    ValueTask<MarkerState> FenceAsync(GlobalTransactionId transactionId, CancellationToken cancellationToken);

    /// <summary>Reads up to <paramref name="maxCount"/> committed markers whose transaction id sorts (as text, ordinal) after <paramref name="after"/>, in that order.</summary>
    ValueTask<IReadOnlyList<CommitMarker>> ReadCommittedMarkersAsync(string? after, int maxCount, CancellationToken cancellationToken);

    /// <summary>Deletes the committed markers of <paramref name="transactionIds"/> (every branch and message of theirs was acknowledged).</summary>
    ValueTask DeleteMarkersAsync(IReadOnlyCollection<GlobalTransactionId> transactionIds, CancellationToken cancellationToken);
}

/// <summary>What a commit marker says.</summary>
public enum MarkerState
{
    /// <summary>The last resource committed with the marker: the global transaction is committed.</summary>
    Committed,

    /// <summary>Recovery fenced the transaction: it did not commit and never can.</summary>
    Aborted,
}

/// <summary>A committed marker: the transaction and its payload (the intentions list).</summary>
/// <param name="TransactionId">The global transaction.</param>
/// <param name="Payload">What the coordinator stored with the marker.</param>
public sealed record CommitMarker(GlobalTransactionId TransactionId, ReadOnlyMemory<byte> Payload);

/// <summary>The answer of <see cref="ICommitMarkerStore.CommitWithMarkerAsync"/>.</summary>
/// <param name="Committed">Whether the branch committed with its marker.</param>
/// <param name="Reason">Why it was refused (rolled back), when it was.</param>
public sealed record MarkerCommitOutcome(bool Committed, string? Reason)
{
    /// <summary>Committed with the marker.</summary>
    public static MarkerCommitOutcome Success { get; } = new(true, null);

    /// <summary>Refused and rolled back, for <paramref name="reason"/>.</summary>
    public static MarkerCommitOutcome Refused(string reason) => new(false, reason);
}
