using System.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using TwoPC.Participants.PostgreSql;
using TwoPC.Transactions;

namespace TwoPC.Participants.Remote;

/// <summary>
/// This service's PostgreSQL branch of a global transaction run by the standalone coordinator. Do the work
/// on <see cref="Connection"/> within <see cref="Transaction"/> (Dapper works on them), then
/// <see cref="PrepareAsync"/>; an endpoint marked <c>AsTwoPCBranch()</c> prepares by itself when the handler
/// answers 2xx, and rolls back otherwise. The coordinator commits or rolls back later through the callbacks.
/// </summary>
public sealed class RemoteBranch : IAsyncDisposable
{
    private readonly RemoteParticipant _participant;
    private readonly ILocalBranch? _local;
    private readonly Lock _lock = new();

    // Held while the session is ended from another connection and while the request's thread releases the branch's
    // connection: the backend pid stays this branch's (not a pooled connection reused by another request) while it is
    // terminated.
    private readonly SemaphoreSlim _session = new(1, 1);
    private BranchState _state = BranchState.Working;
    private Vote? _vote;
    private bool _sessionToEnd;
    private bool _connectionReleased;
    private int _disposed;

    internal RemoteBranch(RemoteParticipant participant, string transactionId, Xid xid, DateTimeOffset deadline, ILocalBranch? branch, Activity? activity)
    {
        _participant = participant;

        // Begun on the request's thread, which read the session id there: the coordinator's rollback never touches the connection.
        _local = branch;
        TransactionId = transactionId;
        Xid = xid;
        Deadline = deadline;
        Activity = activity;
    }

    internal enum BranchState
    {
        Working,
        Preparing,
        Voted,
        Finished,
    }

    /// <summary>The global transaction id.</summary>
    public string TransactionId { get; }

    /// <summary>The XID the coordinator assigned; the prepared transaction's gid.</summary>
    public Xid Xid { get; }

    /// <summary>The transaction's deadline; lock waits end there.</summary>
    public DateTimeOffset Deadline { get; }

    /// <summary>The branch's open connection (until it is prepared or rolled back).</summary>
    public NpgsqlConnection Connection => Pg.Connection;

    /// <summary>The branch's PostgreSQL transaction on <see cref="Connection"/>.</summary>
    public NpgsqlTransaction Transaction => Pg.Transaction;

    // A request refused at join gets a branch without local work; its handler never runs.
    private ILocalBranch Local => _local ?? throw new InvalidOperationException("This request did not join a transaction.");

    private PostgresBranch Pg => Local is PostgresLocalBranch pg ? pg.Branch : throw new NotSupportedException("The branch's local resource is not PostgreSQL.");

    /// <summary>The vote, once prepared.</summary>
    public Vote? Vote => _vote;

    /// <summary>The signed Yes vote the branch request answers with (<c>TwoPC-Prepared-Vote</c>), once prepared Yes; else null.</summary>
    internal string? PreparedVote { get; private set; }

    internal Activity? Activity { get; }

    internal BranchState State
    {
        get
        {
            lock (_lock)
            {
                return _state;
            }
        }
    }

    /// <summary>
    /// Ends the work: <c>PREPARE TRANSACTION</c> under <see cref="Xid"/> (a branch that wrote nothing votes
    /// read-only and is finished). A No vote means PostgreSQL refused and nothing stays prepared.
    /// </summary>
    /// <exception cref="InvalidOperationException">The coordinator already rolled the branch back.</exception>
    public async ValueTask<Vote> PrepareAsync(CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            if (_state != BranchState.Working)
            {
                return _vote ?? throw new InvalidOperationException($"Branch {Xid} was rolled back by the coordinator (its deadline passed?) before it prepared.");
            }

            _state = BranchState.Preparing;
        }

        Vote vote;
        try
        {
            vote = await Local.PrepareAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // PREPARE may or may not have happened: the coordinator's prepare call finds out from pg_prepared_xacts.
            _participant.Logger.PrepareUnknown(ex, Xid);
            lock (_lock)
            {
                _state = BranchState.Finished;
            }

            _participant.Forget(this);
            throw;
        }

        lock (_lock)
        {
            _vote = vote;
            _state = BranchState.Voted;
        }

        _participant.Logger.Voted(Xid, vote.Kind);
        _participant.Metrics.Voted(vote.Kind);
        Activity?.SetTag("twopc.vote", vote.Kind.ToString());
        if (vote.Kind == VoteKind.Yes)
        {
            // Signed into the answer for the caller to relay with its commit, and (if configured) reported before the
            // request answers: either way phase 1 sends no prepare callback. Best effort: when neither reaches the
            // coordinator, the callback asks as before.
            PreparedVote = await _participant.SignPreparedVoteAsync(this, vote, cancellationToken).ConfigureAwait(false);
            await _participant.ReportPreparedAsync(this, vote, cancellationToken).ConfigureAwait(false);
        }

        return vote;
    }

    /// <summary>Rolls the work back if it was never prepared, and returns the connection to the pool.</summary>
    public async ValueTask DisposeAsync()
    {
        Abandon("the branch's request ended without preparing");
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        if (_local is not null)
        {
            // The request's own thread cleans up its connection, after any termination of its session has finished.
            await _session.WaitAsync().ConfigureAwait(false);
            try
            {
                _connectionReleased = true;
                await _local.DisposeAsync().ConfigureAwait(false);
            }
            finally
            {
                _session.Release();
            }
        }

        Activity?.Dispose();
    }

    /// <summary>
    /// Ends a branch whose request will not prepare it with a No vote giving <paramref name="reason"/> (the handler's
    /// status or exception, so the coordinator's outcome says what went wrong; cut by <see cref="ReasonText"/>); the
    /// work is rolled back when the branch is disposed. Nothing changes once the branch prepared or was rolled back.
    /// </summary>
    internal void Abandon(string reason)
    {
        lock (_lock)
        {
            if (_state != BranchState.Working)
            {
                return;
            }

            _vote = Participants.Vote.No(reason);
            _state = BranchState.Voted;
        }

        _participant.Metrics.Voted(VoteKind.No);
    }

    /// <summary>The coordinator's prepare callback: the vote, or <see langword="null"/> while the request is still working.</summary>
    internal Vote? VoteForCoordinator()
    {
        lock (_lock)
        {
            return _state is BranchState.Voted or BranchState.Finished ? _vote ?? Participants.Vote.No("the branch failed") : null;
        }
    }

    /// <summary>
    /// The coordinator rolls back. A branch still working is ended now and answers its outcome: it can no longer
    /// prepare, and its session is terminated from another connection, so the server rolls its transaction back and
    /// the handler's next statement fails. The handler's connection itself is never touched from here (Npgsql
    /// connections are not thread-safe, and the handler may be between two statements): the request's own thread
    /// disposes it. No outcome means "roll back the prepared transaction by XID" when it already voted, and
    /// <c>InProgress</c> "ask again" while PREPARE runs.
    /// </summary>
    internal async ValueTask<(bool InProgress, BranchOutcome? Outcome)> RollbackForCoordinatorAsync(CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (_state == BranchState.Preparing)
            {
                return (true, null);
            }

            // A branch that voted No (PostgreSQL refused the PREPARE, or the request ended without preparing) left
            // nothing prepared: it is rolled back already, with no ROLLBACK PREPARED to send (that would find no
            // gid and log the heuristic-detection warning on this normal path).
            var preparedNothing = _state == BranchState.Voted && _vote is { Kind: VoteKind.No };
            if (_state == BranchState.Working)
            {
                _sessionToEnd = true;
            }

            _state = BranchState.Finished;
            _vote ??= Participants.Vote.No("rolled back by the coordinator");
            if (preparedNothing)
            {
                return (false, BranchOutcome.RolledBack);
            }

            if (!_sessionToEnd)
            {
                return (false, null);
            }
        }

        await EndSessionAsync(cancellationToken).ConfigureAwait(false);
        return (false, BranchOutcome.RolledBack);
    }

    // The local resource ends the session from a connection of its own (PostgreSQL: pg_terminate_backend). A failure
    // throws (the coordinator asks again, and the termination is retried); the branch can no longer prepare either way,
    // and a request that ends first has rolled its transaction back itself when it released the connection.
    private async Task EndSessionAsync(CancellationToken cancellationToken)
    {
        await _session.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            lock (_lock)
            {
                if (!_sessionToEnd)
                {
                    return;
                }
            }

            if (!_connectionReleased && _local is not null)
            {
                await _local.TerminateSessionAsync(cancellationToken).ConfigureAwait(false);
                _participant.Logger.SessionTerminated(Xid, _local.SessionId);
            }

            lock (_lock)
            {
                _sessionToEnd = false;
            }
        }
        finally
        {
            _session.Release();
        }
    }

    /// <summary>Whether the request may still be working (recovery must not touch the branch).</summary>
    internal bool IsInFlight
    {
        get
        {
            lock (_lock)
            {
                return _state is BranchState.Working or BranchState.Preparing;
            }
        }
    }

    /// <summary>
    /// Binds the request's branch as a handler parameter of an endpoint marked <c>AsTwoPCBranch()</c>: joins the
    /// transaction named by the <c>TwoPC-Transaction-Id</c> header (a refusal is answered by the endpoint's
    /// filter before the handler runs). The branch is disposed, rolling back unprepared work, when the request ends.
    /// </summary>
    public static async ValueTask<RemoteBranch?> BindAsync(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (context.GetEndpoint()?.Metadata.GetMetadata<TwoPCBranchEndpoint>() is null)
        {
            throw new InvalidOperationException("A RemoteBranch parameter needs the endpoint marked with .AsTwoPCBranch() (it prepares the branch when the handler succeeds).");
        }

        var participant = context.RequestServices.GetRequiredService<RemoteParticipant>();
        try
        {
            var branch = await participant.JoinAsync(context, context.RequestAborted).ConfigureAwait(false);
            context.Response.RegisterForDisposeAsync(branch);
            context.Items[RemoteParticipantEndpoints.BranchKey] = branch;
            return branch;
        }
        catch (RemoteParticipantException ex)
        {
            context.Items[RemoteParticipantEndpoints.RefusalKey] = ex;
            return new RemoteBranch(participant, string.Empty, Refused, DateTimeOffset.MinValue, null, null);
        }
    }

    private static readonly Xid Refused = Xid.Create(0, "refused", "0");
}

/// <summary>Endpoint metadata added by <c>AsTwoPCBranch()</c>.</summary>
internal sealed class TwoPCBranchEndpoint;
