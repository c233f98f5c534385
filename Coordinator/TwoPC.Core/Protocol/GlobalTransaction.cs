using TwoPC.Participants;
using TwoPC.Transactions;

namespace TwoPC.Protocol;

/// <summary>
/// A global transaction: the unit that commits or rolls back atomically across every enlisted branch.
/// Created by <see cref="TransactionCoordinator.Begin"/>; thread-safe.
/// </summary>
/// <remarks>Disposing an active transaction rolls it back, like a <c>TransactionScope</c> that was never completed.</remarks>
public sealed class GlobalTransaction : IAsyncDisposable
{
    private readonly TransactionCompletions _completions;
    private readonly Lock _gate = new();
    private readonly List<EnlistedBranch> _branches = new(2);
    private int _reservedBranches;
    private (Xid Xid, IResourceManager ResourceManager, uint Hash)? _lastResource;
    private TransactionState _state = TransactionState.Active;
    private TaskCompletionSource<TransactionOutcome>? _completion;

    internal GlobalTransaction(TransactionCompletions completions, GlobalTransactionId id, DateTimeOffset deadline)
    {
        _completions = completions;
        Id = id;
        Deadline = deadline;
    }

    /// <summary>The global transaction id (the gtrid of every branch's XID).</summary>
    public GlobalTransactionId Id { get; }

    /// <summary>After this instant no commit decision is taken; an active transaction is rolled back.</summary>
    public DateTimeOffset Deadline { get; }

    /// <summary>Where the transaction is in the protocol.</summary>
    public TransactionState State
    {
        get
        {
            lock (_gate)
            {
                return _state;
            }
        }
    }

    /// <summary>Time left until <see cref="Deadline"/> (zero when passed); branches derive their lock and statement timeouts from it.</summary>
    public TimeSpan RemainingTime
    {
        get
        {
            var left = Deadline - _completions.Time.GetUtcNow();
            return left > TimeSpan.Zero ? left : TimeSpan.Zero;
        }
    }

    /// <summary>How many branches are enlisted.</summary>
    public int BranchCount
    {
        get
        {
            lock (_gate)
            {
                return _branches.Count;
            }
        }
    }

    /// <summary>
    /// Enlists a branch. <paramref name="createBranch"/> receives the branch's XID (its external id in
    /// the resource) and returns the branch; its resource manager must be registered with the coordinator.
    /// </summary>
    /// <exception cref="InvalidOperationException">The transaction is no longer active, or the resource manager is not registered.</exception>
    public TBranch Enlist<TBranch>(Func<Xid, TBranch> createBranch)
        where TBranch : ITransactionBranch
    {
        ArgumentNullException.ThrowIfNull(createBranch);
        var xid = ReserveBranch(null);
        var branch = createBranch(xid);
        Add(xid, branch);
        return branch;
    }

    /// <summary>Enlists a branch whose creation is asynchronous (for example it opens a database connection).</summary>
    /// <exception cref="InvalidOperationException">The transaction is no longer active, or the resource manager is not registered.</exception>
    public ValueTask<TBranch> EnlistAsync<TBranch>(Func<Xid, CancellationToken, ValueTask<TBranch>> createBranch, CancellationToken cancellationToken = default)
        where TBranch : ITransactionBranch => EnlistForAsync(null, createBranch, cancellationToken);

    /// <summary>
    /// Enlists a branch of <paramref name="resourceManager"/>, known before the branch is created. When the coordinator
    /// runs the last-resource commit (<see cref="TransactionCoordinatorOptions.LastResourceCommit"/>), the first branch
    /// enlisted this way whose resource manager is an <see cref="ICommitMarkerStore"/> becomes the last resource, and the
    /// branches enlisted after it get XIDs that say so.
    /// </summary>
    /// <exception cref="InvalidOperationException">The transaction is no longer active, or the resource manager is not registered.</exception>
    public async ValueTask<TBranch> EnlistForAsync<TBranch>(IResourceManager? resourceManager, Func<Xid, CancellationToken, ValueTask<TBranch>> createBranch, CancellationToken cancellationToken = default)
        where TBranch : ITransactionBranch
    {
        ArgumentNullException.ThrowIfNull(createBranch);
        var xid = ReserveBranch(resourceManager);
        var branch = await createBranch(xid, cancellationToken).ConfigureAwait(false);
        try
        {
            Add(xid, branch);
        }
        catch (InvalidOperationException)
        {
            // The transaction ended while the branch was being created: undo the branch's work.
            await branch.RollbackAsync(CancellationToken.None).ConfigureAwait(false);
            throw;
        }

        return branch;
    }

    /// <summary>
    /// Commits the transaction with two-phase commit and returns the outcome: committed, rolled back (with the
    /// reason, such as the branch that voted no) or heuristic. Idempotent: a second call returns the same outcome.
    /// </summary>
    /// <remarks>
    /// Cancelling before the decision rolls the transaction back. Cancelling after the decision only stops
    /// the wait: phase 2 still completes. Throws <see cref="Durability.TransactionLogFailedException"/> when the log
    /// fails while forcing the decision (the branches then stay in doubt until restart).
    /// </remarks>
    public Task<TransactionOutcome> CommitAsync(CancellationToken cancellationToken = default) => _completions.CommitAsync(this, cancellationToken);

    /// <summary>Rolls back an active transaction (idempotent; after commit began it returns that outcome).</summary>
    public Task<TransactionOutcome> RollbackAsync(CancellationToken cancellationToken = default) => _completions.RollbackAsync(this, cancellationToken);

    /// <summary>Rolls back the transaction if it is still active; otherwise does nothing.</summary>
    public async ValueTask DisposeAsync()
    {
        if (State == TransactionState.Active)
        {
            await RollbackAsync(CancellationToken.None).ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public override string ToString() => Id.ToString();

    /// <summary>The branch chosen as the last resource at enlist (its XID and resource manager), if any.</summary>
    internal (Xid Xid, IResourceManager ResourceManager, uint Hash)? LastResource
    {
        get
        {
            lock (_gate)
            {
                return _lastResource;
            }
        }
    }

    private Xid ReserveBranch(IResourceManager? resourceManager)
    {
        lock (_gate)
        {
            ThrowIfNotActive();
            var n = ++_reservedBranches;
            if (!_completions.LastResourceCommit)
            {
                return Xid.ForBranch(Id, n);
            }

            if (_lastResource is { } last)
            {
                // Decided by the last resource's marker: the XID says where recovery finds it.
                return LastResourceXid.ForBranch(Id, n, last.Hash);
            }

            var xid = Xid.ForBranch(Id, n);
            if (resourceManager is ICommitMarkerStore)
            {
                _lastResource = (xid, resourceManager, LastResourceXid.Hash(resourceManager.Name));
            }

            return xid;
        }
    }

    private void Add(Xid xid, ITransactionBranch branch)
    {
        ArgumentNullException.ThrowIfNull(branch);
        _completions.ResourceManagers.EnsureRegistered(branch.ResourceManager);
        lock (_gate)
        {
            ThrowIfNotActive();
            _branches.Add(new EnlistedBranch(xid, branch));
        }
    }

    private void ThrowIfNotActive()
    {
        if (_state != TransactionState.Active)
        {
            throw new InvalidOperationException($"Transaction {Id} is {_state}; branches can only enlist while it is active.");
        }
    }

    /// <summary>
    /// Moves an active transaction to <paramref name="next"/> and returns the completion the caller
    /// must run (<paramref name="owner"/> = true), or the completion already running (commit and
    /// rollback are idempotent).
    /// </summary>
    internal TaskCompletionSource<TransactionOutcome> BeginCompletion(TransactionState next, out bool owner, out EnlistedBranch[] branches)
    {
        lock (_gate)
        {
            if (_completion is not null)
            {
                owner = false;
                branches = [];
                return _completion;
            }

            _state = next;
            _completion = new TaskCompletionSource<TransactionOutcome>(TaskCreationOptions.RunContinuationsAsynchronously);
            owner = true;
            branches = [.. _branches];
            return _completion;
        }
    }

    /// <summary>The branches enlisted so far.</summary>
    internal EnlistedBranch[] SnapshotBranches()
    {
        lock (_gate)
        {
            return [.. _branches];
        }
    }

    internal void SetState(TransactionState state)
    {
        lock (_gate)
        {
            _state = state;
        }
    }
}

/// <summary>A branch enlisted in a live transaction.</summary>
internal sealed record EnlistedBranch(Xid Xid, ITransactionBranch Branch)
{
    public IResourceManager ResourceManager => Branch.ResourceManager;
}
