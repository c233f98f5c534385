using TwoPC.Transactions;

namespace TwoPC.Durability;

/// <summary>The lease a coordinator node holds on a shared log.</summary>
/// <param name="Node">The node.</param>
/// <param name="Epoch">
/// Its fencing token: the epoch of the node's current start. A takeover raises it, after which every decision the node
/// tries to write under the old epoch is refused.
/// </param>
/// <param name="ExpiresAt">When the lease lapses unless renewed (the log database's clock).</param>
public sealed record NodeLease(NodeId Node, ulong Epoch, DateTimeOffset ExpiresAt);

/// <summary>What a node that took over a dead node must finish for it: exactly what that node's own restart would.</summary>
/// <param name="Node">The node taken over.</param>
/// <param name="FencedEpoch">
/// The epoch the takeover raised the node to. No process ever runs under it: every transaction id of the node with an
/// epoch at most this one was begun by a process that can no longer log a decision, so a prepared branch of it with no
/// decision on record may be rolled back (presumed abort). A later restart of the node takes a larger epoch.
/// </param>
/// <param name="PendingDecisions">The node's commit decisions without an END: phase 2 must be driven again.</param>
/// <param name="Heuristics">The node's heuristic outcomes not yet forgotten.</param>
public sealed record TakeoverState(NodeId Node, ulong FencedEpoch, IReadOnlyList<CommitDecision> PendingDecisions, IReadOnlyList<HeuristicRecord> Heuristics);

/// <summary>What a shared log knows of one transaction's decision, for any node to answer about any transaction.</summary>
public enum SharedDecision
{
    /// <summary>A commit decision is on record (phase 2 may still be running).</summary>
    Committed,

    /// <summary>
    /// No decision is on record and none can be written any more (the transaction's epoch is over: its node restarted
    /// or was fenced). Presumed abort: a branch still prepared must be rolled back. (A decision whose branches all
    /// acknowledged is removed too, but then no branch is left to ask about.)
    /// </summary>
    Absent,

    /// <summary>No decision yet, and the transaction's node still holds the epoch it was begun in: it may still decide. Ask again later.</summary>
    Undetermined,
}

/// <summary>
/// A transaction log shared by several coordinator nodes (high availability): each node holds a lease whose epoch fences
/// its writes, and a live node takes over a node whose lease expired.
/// </summary>
/// <remarks>
/// Safety rests on one rule, which implementations must keep in the same database transaction as the write: a commit
/// decision or heuristic is stored only while the writer's epoch is still the current epoch of its node. A takeover
/// raises that epoch first and reads the node's decisions after, so every decision is either visible to the taker or
/// refused to the writer — never both, never neither. A node whose write was refused is fenced: the log fails
/// (<see cref="ITransactionLog.Failure"/> is a <see cref="NodeFencedException"/>) and the node decides nothing more.
/// <see cref="ITransactionLog.LogCommitDecisionAsync"/> throws <see cref="NodeFencedException"/> only when the decision
/// is certainly not stored (the protocol then rolls the transaction back, agreeing with the taker); when it cannot tell
/// (a connection lost during the commit) it finds out first, or fails with another exception (the transaction stays in doubt).
/// </remarks>
public interface ISharedTransactionLog : ITransactionLog
{
    /// <summary>This node's lease, renewed in the background; <see langword="null"/> before the log is opened.</summary>
    NodeLease? Lease { get; }

    /// <summary>
    /// Other nodes whose lease has expired and whose work no live node has adopted (a node adopted by a node that died
    /// since is listed again).
    /// </summary>
    ValueTask<IReadOnlyList<NodeLease>> FindTakeoverCandidatesAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Fences <paramref name="node"/> (raises its epoch, marks it adopted by this node) if its lease is still expired and
    /// still not adopted by a live node, then reads what it left: its pending decisions and heuristics.
    /// </summary>
    /// <returns>What to finish for the node, or <see langword="null"/> when it renewed its lease or another live node took it over first.</returns>
    ValueTask<TakeoverState?> TryTakeOverAsync(NodeId node, CancellationToken cancellationToken);

    /// <summary>What the log says of a transaction begun by any node.</summary>
    ValueTask<SharedDecision> FindDecisionAsync(GlobalTransactionId transactionId, CancellationToken cancellationToken);
}

/// <summary>
/// This coordinator node was fenced: another node took over its lease (it was paused, partitioned or too slow to renew),
/// so the shared log refused its write. The node must decide nothing more; restart it to rejoin under a new epoch.
/// </summary>
public sealed class NodeFencedException : Exception
{
    /// <summary>Creates the exception.</summary>
    public NodeFencedException() : base("This coordinator node was fenced: another node took over its lease.") { }

    /// <summary>Creates the exception with a message.</summary>
    public NodeFencedException(string message) : base(message) { }

    /// <summary>Creates the exception with a message and an inner exception.</summary>
    public NodeFencedException(string message, Exception innerException) : base(message, innerException) { }
}
