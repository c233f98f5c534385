using TwoPC.Transactions;

namespace TwoPC.Participants.Remote;

/// <summary>
/// The seam between the participant SDK and the database its branches run in: what joining, the coordinator's
/// callbacks and participant-side recovery need of it. PostgreSQL (<see cref="PostgresLocalResource"/>) is the one
/// implementation today; another database implements these two interfaces and the SDK's protocol stays as it is.
/// </summary>
internal interface ILocalResource : IDisposable
{
    /// <summary>Begins the local transaction of a branch under the XID the coordinator assigned.</summary>
    ValueTask<ILocalBranch> BeginBranchAsync(Xid xid, DateTimeOffset deadline, CancellationToken cancellationToken);

    /// <summary>Whether the branch is prepared in the database (after a restart, the only memory of its vote).</summary>
    ValueTask<bool> IsPreparedAsync(Xid xid, CancellationToken cancellationToken);

    /// <summary>Commits the prepared branch by XID.</summary>
    ValueTask<BranchOutcome> CommitAsync(Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken);

    /// <summary>Rolls the prepared branch back by XID.</summary>
    ValueTask<BranchOutcome> RollbackAsync(Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken);

    /// <summary>
    /// Whether the database can tell exactly what became of a branch that is no longer prepared (a repeated commit or
    /// rollback after this process forgot it), from <paramref name="recoveryData"/> or what it remembers.
    /// </summary>
    bool CanAnswerFinished(Xid xid, ReadOnlyMemory<byte> recoveryData);

    /// <summary>The branches prepared in the database.</summary>
    ValueTask<IReadOnlyCollection<InDoubtBranch>> RecoverAsync(CancellationToken cancellationToken);

    /// <summary>Whether <paramref name="exception"/> is the database failing (recovery leaves the branch for the next pass).</summary>
    bool IsResourceFailure(Exception exception);
}

/// <summary>The local transaction of one branch, owned by the request that joined.</summary>
internal interface ILocalBranch : IAsyncDisposable
{
    /// <summary>The database session the branch's work runs in (for the log when it is terminated).</summary>
    int SessionId { get; }

    /// <summary>Prepares the local transaction under the branch's XID.</summary>
    ValueTask<Vote> PrepareAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Ends the branch's session from a connection of its own, so the database rolls its transaction back and the
    /// handler's next statement fails; never touches the handler's own connection (not thread-safe).
    /// </summary>
    Task TerminateSessionAsync(CancellationToken cancellationToken);
}
