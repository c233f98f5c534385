using TwoPC.Transactions;

namespace TwoPC.Participants;

/// <summary>
/// A resource manager: the durable identity of a resource (a PostgreSQL database, a RabbitMQ
/// publisher, a remote service) that takes part in global transactions. It is registered with the
/// coordinator under a unique, stable <see cref="Name"/>; the commit decision records that name for
/// every branch so that recovery can reach the resource again after a restart.
/// </summary>
/// <remarks>
/// Phase 2 after a Yes vote always goes through the resource manager by XID (and the branch's
/// recovery data), in the normal path and in recovery alike, so it must work from any process that
/// registered the same name. Every method may throw for a transient failure; the coordinator retries.
/// Implementations must be idempotent: committing a committed branch reports <see cref="BranchOutcome.Committed"/>.
/// </remarks>
public interface IResourceManager
{
    /// <summary>The unique, stable name this resource manager is registered under (1 to 64 characters).</summary>
    string Name { get; }

    /// <summary>
    /// <see langword="true"/> when committing one of this resource's branches is a single atomic step that
    /// needs no recovery data to redo (a database's <c>COMMIT</c> or <c>COMMIT PREPARED</c>). Only then may
    /// the coordinator commit the branch without a forced decision record when it is the only branch to
    /// commit (the one-phase path, or the single Yes among read-only branches): a crash before that commit
    /// leaves the branch to presumed abort, which is atomic too.
    /// </summary>
    /// <remarks>
    /// The default, <see langword="false"/>, is the safe answer: a resource whose commit takes several steps
    /// (publishing staged messages one by one) or must be re-driven from its recovery data (a remote
    /// participant reached by callback) is always prepared, and its commit decision forced to the log, so
    /// that phase 2 is retried until it is acknowledged, also after a restart.
    /// </remarks>
    bool CommitsAtomically => false;

    /// <summary>Commits a prepared branch (phase 2) and reports what became of it.</summary>
    /// <returns><see cref="BranchOutcome.Committed"/> when the branch is committed (also when it already was);
    /// <see cref="BranchOutcome.RolledBack"/> when someone else rolled it back: a heuristic outcome.</returns>
    ValueTask<BranchOutcome> CommitAsync(Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken);

    /// <summary>Rolls back a prepared branch and reports what became of it (<see cref="BranchOutcome.RolledBack"/>
    /// also when the resource no longer knows the branch: presumed abort).</summary>
    ValueTask<BranchOutcome> RollbackAsync(Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken);

    /// <summary>Lists the branches this resource holds prepared (in doubt), like <c>xa_recover</c>.
    /// The coordinator ignores branches whose XID is not its own.</summary>
    ValueTask<IReadOnlyCollection<InDoubtBranch>> RecoverAsync(CancellationToken cancellationToken);

    /// <summary>Lets the resource discard what it remembers of a heuristically completed branch.</summary>
    ValueTask ForgetAsync(Xid xid, CancellationToken cancellationToken);
}

/// <summary>
/// One branch of one global transaction, alive in this process: the unit of work a resource does
/// for the transaction until it votes. Created by the resource's enlist helper and handed to
/// <c>GlobalTransaction.Enlist</c>.
/// </summary>
public interface ITransactionBranch
{
    /// <summary>The resource manager that owns this branch (phase 2 and recovery go through it).</summary>
    IResourceManager ResourceManager { get; }

    /// <summary>Phase 1: make the branch's work durable but undecided, and vote.</summary>
    /// <remarks>Throwing, or not answering before the token is cancelled, counts as a No vote.</remarks>
    ValueTask<Vote> PrepareAsync(CancellationToken cancellationToken);

    /// <summary>The one-phase optimisation: the transaction has only this branch, so commit it directly.</summary>
    /// <returns><see cref="BranchOutcome.Committed"/> or <see cref="BranchOutcome.RolledBack"/>; throwing means the outcome is unknown.</returns>
    ValueTask<BranchOutcome> CommitOnePhaseAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Rolls the branch back whatever state it reached: not yet prepared, prepared, or a prepare whose
    /// answer was lost. Must be idempotent.
    /// </summary>
    ValueTask<BranchOutcome> RollbackAsync(CancellationToken cancellationToken);
}

/// <summary>
/// Optionally implemented by resource managers that can tell how long their oldest prepared branch has
/// been waiting (prepared transactions hold locks and resources); health checks and operators read it.
/// </summary>
public interface IPreparedAgeReporter
{
    /// <summary>Age of the oldest prepared branch at the last recovery scan, or <see langword="null"/> when there is none.</summary>
    TimeSpan? OldestPreparedAge { get; }
}
