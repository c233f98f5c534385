namespace TwoPC.Transactions;

/// <summary>
/// Hands out this coordinator's transaction ids (node, epoch of this start, sequence) and answers whether an id
/// of this node could have been handed out yet: recovery and forced actions must never presume an id it did not issue.
/// </summary>
internal sealed class TransactionIdAllocator(NodeId node)
{
    private long _lastSequence;
    private ulong _epoch;

    public NodeId Node { get; } = node;

    /// <summary>The epoch of this start (0 until the log has been opened).</summary>
    public ulong Epoch => Volatile.Read(ref _epoch);

    /// <summary>The last sequence handed out in this epoch (0 when none).</summary>
    public ulong LastSequence => (ulong)Interlocked.Read(ref _lastSequence);

    /// <summary>Set once, when the log has been opened: the epoch it assigned to this start.</summary>
    public void StartEpoch(ulong epoch) => Volatile.Write(ref _epoch, epoch);

    public GlobalTransactionId Next() => new(Node, Epoch, (ulong)Interlocked.Increment(ref _lastSequence));

    /// <summary>
    /// <see langword="true"/> when <paramref name="id"/> names this node but an epoch later than this start's, or a
    /// sequence of this epoch not handed out yet: this coordinator has not begun it.
    /// </summary>
    public bool NotIssuedYet(GlobalTransactionId id) =>
        id.Node == Node && (id.Epoch > Epoch || (id.Epoch == Epoch && id.Sequence > LastSequence));
}
