using System.Collections.Concurrent;
using TwoPC.Participants;
using TwoPC.Transactions;

namespace TwoPC.Testing;

/// <summary>The state of a branch of a test participant.</summary>
public enum TestBranchState
{
    /// <summary>Enlisted, working.</summary>
    Active,

    /// <summary>Prepared (in doubt).</summary>
    Prepared,

    /// <summary>Committed.</summary>
    Committed,

    /// <summary>Rolled back.</summary>
    RolledBack,
}

/// <summary>
/// An in-memory resource manager whose answers a test scripts: votes, failures, delays and heuristic
/// answers. It records every call so tests can assert what the coordinator did.
/// </summary>
public sealed class ScriptedResourceManager(string name) : IResourceManager
{
    private readonly ConcurrentDictionary<Xid, TestBranchState> _states = new();
    private readonly ConcurrentQueue<string> _calls = new();

    /// <inheritdoc />
    public string Name { get; } = name;

    /// <summary>Whether this resource declares its commit atomic (default <see langword="true"/>, like a database);
    /// <see langword="false"/> makes it behave like a publisher or remote participant that must be prepared and logged.</summary>
    public bool CommitsAtomically { get; set; } = true;

    /// <summary>The vote of the next branches (default Yes).</summary>
    public Func<Xid, CancellationToken, ValueTask<Vote>> Prepare { get; set; } = static (_, _) => ValueTask.FromResult(Vote.Yes("data"u8.ToArray()));

    /// <summary>How many commit calls throw before one succeeds (transient failures).</summary>
    public int CommitFailuresRemaining
    {
        get => Volatile.Read(ref _commitFailuresRemaining);
        set => Volatile.Write(ref _commitFailuresRemaining, value);
    }

    private int _commitFailuresRemaining;

    /// <summary>When set, commit answers this instead of committing (heuristic tests).</summary>
    public BranchOutcome? CommitAnswer { get; set; }

    /// <summary>When set, every phase-2 commit first awaits this (a slow resource; it may ignore the token).</summary>
    public Func<Xid, CancellationToken, Task>? BeforeCommit { get; set; }

    /// <summary>When set, rollback answers this instead of rolling back.</summary>
    public BranchOutcome? RollbackAnswer { get; set; }

    /// <summary>When set, one-phase commit throws this.</summary>
    public Exception? OnePhaseFailure { get; set; }

    /// <summary>Every call, in order, as "operation xid".</summary>
    public IReadOnlyList<string> Calls => [.. _calls];

    /// <summary>The state of every branch this resource has seen.</summary>
    public IReadOnlyDictionary<Xid, TestBranchState> States => _states;

    /// <summary>Recovery data received by commit, per branch.</summary>
    public ConcurrentDictionary<Xid, byte[]> CommittedRecoveryData { get; } = new();

    /// <summary>Creates a branch for a transaction (pass to <c>GlobalTransaction.Enlist</c>).</summary>
    public ITransactionBranch CreateBranch(Xid xid)
    {
        _states[xid] = TestBranchState.Active;
        return new Branch(this, xid);
    }

    /// <summary>Puts a prepared branch in place as if an earlier process had prepared it (for recovery tests).</summary>
    public void AddPrepared(Xid xid) => _states[xid] = TestBranchState.Prepared;

    /// <summary>Changes a branch's state behind the coordinator's back (an operator's manual action).</summary>
    public void SetState(Xid xid, TestBranchState state) => _states[xid] = state;

    /// <inheritdoc />
    public async ValueTask<BranchOutcome> CommitAsync(Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken)
    {
        _calls.Enqueue("commit " + xid);
        if (BeforeCommit is { } before)
        {
            await before(xid, cancellationToken).ConfigureAwait(false);
        }

        if (Interlocked.Decrement(ref _commitFailuresRemaining) >= 0)
        {
            throw new IOException("scripted transient commit failure");
        }

        if (CommitAnswer is { } answer)
        {
            return answer;
        }

        CommittedRecoveryData[xid] = recoveryData.ToArray();
        var state = _states.AddOrUpdate(xid, TestBranchState.Committed, static (_, s) => s == TestBranchState.Prepared ? TestBranchState.Committed : s);
        return state == TestBranchState.RolledBack ? BranchOutcome.RolledBack : BranchOutcome.Committed;
    }

    /// <inheritdoc />
    public ValueTask<BranchOutcome> RollbackAsync(Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken)
    {
        _calls.Enqueue("rollback " + xid);
        if (RollbackAnswer is { } answer)
        {
            return ValueTask.FromResult(answer);
        }

        var state = _states.AddOrUpdate(xid, TestBranchState.RolledBack, static (_, s) => s == TestBranchState.Committed ? s : TestBranchState.RolledBack);
        return ValueTask.FromResult(state == TestBranchState.Committed ? BranchOutcome.Committed : BranchOutcome.RolledBack);
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyCollection<InDoubtBranch>> RecoverAsync(CancellationToken cancellationToken)
    {
        _calls.Enqueue("recover");
        IReadOnlyCollection<InDoubtBranch> prepared = [.. _states.Where(s => s.Value == TestBranchState.Prepared).Select(s => new InDoubtBranch(s.Key))];
        return ValueTask.FromResult(prepared);
    }

    /// <inheritdoc />
    public ValueTask ForgetAsync(Xid xid, CancellationToken cancellationToken)
    {
        _calls.Enqueue("forget " + xid);
        return ValueTask.CompletedTask;
    }

    private sealed class Branch(ScriptedResourceManager rm, Xid xid) : ITransactionBranch
    {
        public IResourceManager ResourceManager => rm;

        public async ValueTask<Vote> PrepareAsync(CancellationToken cancellationToken)
        {
            rm._calls.Enqueue("prepare " + xid);
            var vote = await rm.Prepare(xid, cancellationToken).ConfigureAwait(false);
            rm._states[xid] = vote.Kind switch
            {
                VoteKind.Yes => TestBranchState.Prepared,
                VoteKind.No => TestBranchState.RolledBack,
                _ => TestBranchState.Committed,
            };
            return vote;
        }

        public ValueTask<BranchOutcome> CommitOnePhaseAsync(CancellationToken cancellationToken)
        {
            rm._calls.Enqueue("commit-one-phase " + xid);
            if (rm.OnePhaseFailure is { } failure)
            {
                throw failure;
            }

            rm._states[xid] = TestBranchState.Committed;
            return ValueTask.FromResult(BranchOutcome.Committed);
        }

        public ValueTask<BranchOutcome> RollbackAsync(CancellationToken cancellationToken) => rm.RollbackAsync(xid, default, cancellationToken);
    }
}
