using Microsoft.Extensions.Logging;
using Npgsql;
using TwoPC.Transactions;

namespace TwoPC.Participants.PostgreSql;

/// <summary>
/// One PostgreSQL transaction enlisted in a global transaction. Do the branch's work on
/// <see cref="Connection"/> within <see cref="Transaction"/> (Dapper: <c>branch.Connection.ExecuteAsync(sql, args, branch.Transaction)</c>);
/// the coordinator prepares it at commit and the connection goes back to the pool.
/// </summary>
public sealed partial class PostgresBranch : ITransactionBranch, IAsyncDisposable
{
    private const string DuplicateObject = "42710";

    private readonly PostgresResourceManager _rm;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private State _state = State.Active;
    private ulong? _transactionId;

    private readonly DateTimeOffset _deadline;
    private readonly TimeProvider _time;

    internal PostgresBranch(PostgresResourceManager rm, Xid xid, NpgsqlConnection connection, NpgsqlTransaction transaction, ILogger logger, DateTimeOffset deadline, TimeProvider time)
    {
        _rm = rm;
        _deadline = deadline;
        _time = time;
        Xid = xid;
        Connection = connection;
        Transaction = transaction;
        SessionId = connection.ProcessID;
        _logger = logger;
    }

    private enum State
    {
        Active,
        Preparing,
        Prepared,
        Finished,
    }

    /// <summary>The branch's XID; its text is the gid of the prepared transaction.</summary>
    public Xid Xid { get; }

    /// <summary>The open connection of the branch; valid until the branch is prepared or finished.</summary>
    public NpgsqlConnection Connection { get; }

    /// <summary>The branch's PostgreSQL transaction on <see cref="Connection"/>.</summary>
    public NpgsqlTransaction Transaction { get; }

    /// <summary>The process id of the branch's PostgreSQL session (read when the branch began, so it stays readable while the connection is busy or gone).</summary>
    public int SessionId { get; }

    /// <inheritdoc />
    public IResourceManager ResourceManager => _rm;

    /// <summary>
    /// Prepares: reads the branch's transaction id and runs <c>PREPARE TRANSACTION</c> in one round trip. A branch
    /// with no transaction id wrote nothing (also a <c>READ ONLY</c> one): it finishes and votes read-only. A Yes vote
    /// carries the transaction id as recovery data, so phase 2 can ask PostgreSQL what became of the branch even
    /// after its gid is gone. Anything PostgreSQL refuses is a No vote with the reason, with nothing left prepared.
    /// The connection returns to the pool either way.
    /// </summary>
    public async ValueTask<Vote> PrepareAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_state != State.Active)
            {
                return _state == State.Prepared ? Vote.Yes(PreparedRecoveryData) : Vote.No("the branch already ended");
            }

            var gid = PostgresGid.Literal(Xid);
            try
            {
                // One round trip. In an aborted transaction the SELECT fails with 25P02 and the PREPARE never runs —
                // PREPARE there would silently roll back instead of failing. The SELECT writes nothing, so it also
                // works in a READ ONLY transaction.
                _state = State.Preparing;
                ulong? transactionId;
                var prepare = new NpgsqlBatch(Connection, Transaction);
                await using (prepare.ConfigureAwait(false))
                {
                    prepare.BatchCommands.Add(new NpgsqlBatchCommand("SELECT pg_current_xact_id_if_assigned()::text"));
                    prepare.BatchCommands.Add(new NpgsqlBatchCommand("PREPARE TRANSACTION " + gid));
                    var reader = await prepare.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                    await using var readerScope = reader.ConfigureAwait(false);
                    transactionId = await reader.ReadAsync(cancellationToken).ConfigureAwait(false) && !await reader.IsDBNullAsync(0, cancellationToken).ConfigureAwait(false)
                        ? ulong.Parse(reader.GetString(0), System.Globalization.CultureInfo.InvariantCulture)
                        : null;
                    while (await reader.NextResultAsync(cancellationToken).ConfigureAwait(false))
                    {
                        // The PREPARE's (empty) result; its error, if any, surfaces here.
                    }
                }

                if (transactionId is not { } id)
                {
                    // It wrote nothing (PREPARE gave the empty transaction an id of its own): finish it, no phase 2.
                    await _rm.FinishEmptyPreparedAsync(Xid, cancellationToken).ConfigureAwait(false);
                    _state = State.Finished;
                    _logger.ReadOnly(Xid);
                    return Vote.ReadOnly;
                }

                _transactionId = id;
                _rm.RememberPrepared(Xid, id);
                _state = State.Prepared;
                _logger.Prepared(Xid, id);
                return Vote.Yes(PreparedRecoveryData);
            }
            catch (PostgresException ex) when (ex.InvariantSeverity == "ERROR")
            {
                // The server refused (constraint, serialization failure, temp tables, lock or statement timeout, gid in
                // use): a failed PREPARE is a rollback, so nothing stays prepared. (A FATAL — the session ended — is
                // handled below: the PREPARE may have completed before it.)
                await RollbackQuietlyAsync().ConfigureAwait(false);
                _state = State.Finished;
                var reason = ex.SqlState == DuplicateObject ? _rm.GidInUseReason(Xid, ex) : $"{ex.SqlState}: {ex.MessageText}";
                _logger.VotedNo(Xid, reason);
                return Vote.No(reason);
            }
            catch (Exception ex) when (ex is NpgsqlException or IOException or TimeoutException or OperationCanceledException)
            {
                if (_state == State.Preparing)
                {
                    // The PREPARE may have reached the server: let the coordinator roll back by gid.
                    _logger.PrepareOutcomeUnknown(ex, Xid);
                    throw;
                }

                // Lost before PREPARE: the server rolls back a transaction whose session ends.
                await RollbackQuietlyAsync().ConfigureAwait(false);
                _state = State.Finished;
                return Vote.No("connection lost before prepare: " + ex.Message);
            }
        }
        finally
        {
            await ReleaseConnectionAsync().ConfigureAwait(false);
            _gate.Release();
        }
    }

    /// <summary>
    /// The one-phase path: a plain <c>COMMIT</c>, answered exactly. A COMMIT that never reached the server (the
    /// session already died, the transaction already failed) is a rollback; a COMMIT whose answer was lost is
    /// resolved by asking PostgreSQL, on another connection, what became of the transaction id read just before.
    /// </summary>
    /// <exception cref="PostgresOutcomeUnknownException">PostgreSQL itself cannot tell whether the COMMIT took effect.</exception>
    public async ValueTask<BranchOutcome> CommitOnePhaseAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_state != State.Active)
            {
                throw new InvalidOperationException($"Branch {Xid} cannot commit in one phase: it is {_state}.");
            }

            ulong? transactionId;
            try
            {
                // An aborted transaction answers COMMIT with ROLLBACK and no error: find out first (25P02), and learn the
                // transaction id to ask about if the COMMIT's answer is lost.
                transactionId = await CurrentTransactionIdAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is NpgsqlException or InvalidOperationException or IOException or TimeoutException or OperationCanceledException)
            {
                // No COMMIT was sent: the transaction failed, or its session is gone (the server rolled it back), or
                // it is rolled back now.
                await RollbackQuietlyAsync().ConfigureAwait(false);
                _state = State.Finished;
                _logger.OnePhaseRolledBackBeforeCommit(Xid, ex.Message);
                return BranchOutcome.RolledBack;
            }

            try
            {
                await Transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
                _state = State.Finished;
                return BranchOutcome.Committed;
            }
            catch (PostgresException ex) when (ex.InvariantSeverity == "ERROR")
            {
                // Refused at commit (deferred constraint, serialization failure), session intact: rolled back.
                _state = State.Finished;
                return BranchOutcome.RolledBack;
            }
            catch (Exception ex) when (ex is NpgsqlException or IOException or TimeoutException or OperationCanceledException or InvalidOperationException)
            {
                // The COMMIT was sent and its answer lost (the session died, the connection broke, the call timed out).
                _state = State.Finished;
                if (transactionId is not { } id)
                {
                    return BranchOutcome.RolledBack; // it wrote nothing: committed or not, nothing changed
                }

                _logger.OnePhaseCommitInterrupted(ex, Xid, id);
                return await _rm.ResolveOnePhaseAsync(Xid, id, cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            await ReleaseConnectionAsync().ConfigureAwait(false);
            _gate.Release();
        }
    }

    /// <summary>Rolls back: a plain <c>ROLLBACK</c> before prepare, <c>ROLLBACK PREPARED</c> after (or when the prepare's answer was lost).</summary>
    public async ValueTask<BranchOutcome> RollbackAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            switch (_state)
            {
                case State.Active when Busy || _time.GetUtcNow() >= _deadline:
                    // The coordinator is rolling back (a timeout) while the application may still be using the
                    // connection; Npgsql connections are not thread-safe, so end the session from another
                    // connection instead: the server rolls the transaction back and releases its locks, and the
                    // application's statement fails.
                    await TerminateSessionAsync(cancellationToken).ConfigureAwait(false);
                    _state = State.Finished;
                    return BranchOutcome.RolledBack;
                case State.Active:
                    await RollbackQuietlyAsync().ConfigureAwait(false);
                    _state = State.Finished;
                    return BranchOutcome.RolledBack;
                case State.Preparing:
                case State.Prepared:
                    var outcome = await _rm.RollbackAsync(Xid, PreparedRecoveryData, cancellationToken).ConfigureAwait(false);
                    _state = State.Finished;
                    return outcome;
                default:
                    return BranchOutcome.RolledBack;
            }
        }
        finally
        {
            await ReleaseConnectionAsync().ConfigureAwait(false);
            _gate.Release();
        }
    }

    /// <summary>Ends the branch's local work if it was never prepared (rolls it back) and returns the connection.</summary>
    public async ValueTask DisposeAsync()
    {
        await _gate.WaitAsync().ConfigureAwait(false);
        try
        {
            if (_state == State.Active)
            {
                await RollbackQuietlyAsync().ConfigureAwait(false);
                _state = State.Finished;
            }

            await ReleaseConnectionAsync().ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
    }

    private bool Busy => (Connection.FullState & (System.Data.ConnectionState.Executing | System.Data.ConnectionState.Fetching)) != 0;

    /// <summary>
    /// Ends the branch's PostgreSQL session from another connection of the data source (<c>pg_terminate_backend</c>): the
    /// server rolls the transaction back and releases its locks, and a statement running on <see cref="Connection"/>
    /// fails. Safe while another thread uses the connection, which Npgsql connections themselves are not.
    /// </summary>
    public async Task TerminateSessionAsync(CancellationToken cancellationToken)
    {
        var admin = await _rm.DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var adminScope = admin.ConfigureAwait(false);
        var terminate = new NpgsqlCommand("SELECT pg_terminate_backend($1)", admin);
        await using var terminateScope = terminate.ConfigureAwait(false);
        terminate.Parameters.AddWithValue(SessionId);
        await terminate.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        _logger.BackendTerminated(Xid, SessionId);
    }

    private ReadOnlyMemory<byte> PreparedRecoveryData => _transactionId is { } id ? PostgresRecoveryData.Encode(id) : default;

    private async Task<ulong?> CurrentTransactionIdAsync(CancellationToken cancellationToken)
    {
        var check = new NpgsqlCommand("SELECT pg_current_xact_id_if_assigned()::text", Connection, Transaction);
        await using var checkScope = check.ConfigureAwait(false);
        return await check.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is string text
            ? ulong.Parse(text, System.Globalization.CultureInfo.InvariantCulture)
            : null;
    }

    private async Task RollbackQuietlyAsync()
    {
        try
        {
            if (Connection.State == System.Data.ConnectionState.Open)
            {
                await Transaction.RollbackAsync(CancellationToken.None).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is NpgsqlException or InvalidOperationException or IOException)
        {
            // The session is gone, and with it the transaction.
        }
    }

    private async Task ReleaseConnectionAsync()
    {
        // A connection still executing the application's statement belongs to that statement; it fails
        // (its session was terminated) and the application disposes it.
        if (Connection.State != System.Data.ConnectionState.Closed && !Busy)
        {
            await Transaction.DisposeAsync().ConfigureAwait(false);
            await Connection.DisposeAsync().ConfigureAwait(false);
        }
    }
}
