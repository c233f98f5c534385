using Microsoft.Extensions.Logging;
using Npgsql;
using TwoPC.Transactions;

namespace TwoPC.Participants.PostgreSql;

/// <summary>
/// One PostgreSQL transaction enlisted in a global transaction. Do the branch's work on
/// <see cref="Connection"/> within <see cref="Transaction"/> (Dapper: <c>branch.Connection.ExecuteAsync(sql, args, branch.Transaction)</c>);
/// the coordinator prepares it at commit and the connection goes back to the pool.
/// </summary>
public sealed class PostgresBranch : ITransactionBranch, IAsyncDisposable
{
    private readonly PostgresResourceManager _rm;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private State _state = State.Active;

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

    /// <inheritdoc />
    public IResourceManager ResourceManager => _rm;

    /// <summary>
    /// Prepares: a branch that wrote nothing commits and votes read-only; otherwise the marker row is
    /// inserted and <c>PREPARE TRANSACTION</c> runs. Anything PostgreSQL refuses is a No vote with the
    /// reason, with nothing left prepared. The connection returns to the pool either way.
    /// </summary>
    public async ValueTask<Vote> PrepareAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_state != State.Active)
            {
                return _state == State.Prepared ? Vote.Yes() : Vote.No("the branch already ended");
            }

            var gid = PostgresGid.Literal(Xid);
            try
            {
                // One round trip: the marker row is written only if the branch wrote something (it has a
                // transaction id), then PREPARE TRANSACTION. In an aborted transaction the INSERT fails with
                // 25P02 and the PREPARE never runs — PREPARE there would silently roll back instead of failing.
                _state = State.Preparing;
                await using (var prepare = new NpgsqlBatch(Connection, Transaction))
                {
                    prepare.BatchCommands.Add(new NpgsqlBatchCommand(_rm.MarkerInsertIfWritten(gid)));
                    prepare.BatchCommands.Add(new NpgsqlBatchCommand("PREPARE TRANSACTION " + gid));
                    await prepare.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                    if (prepare.BatchCommands[0].RecordsAffected == 0)
                    {
                        // It wrote nothing: finish the (empty) prepared transaction and leave phase 2 out.
                        await _rm.CommitAsync(Xid, default, cancellationToken).ConfigureAwait(false);
                        _state = State.Finished;
                        _logger.ReadOnly(Xid);
                        return Vote.ReadOnly;
                    }
                }

                _state = State.Prepared;
                _logger.Prepared(Xid);
                return Vote.Yes();
            }
            catch (PostgresException ex)
            {
                // The server refused (constraint, serialization failure, temp tables, lock or statement timeout):
                // a failed PREPARE is a rollback, so nothing stays prepared.
                await RollbackQuietlyAsync().ConfigureAwait(false);
                _state = State.Finished;
                var reason = $"{ex.SqlState}: {ex.MessageText}";
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

    /// <summary>The one-phase path: a plain <c>COMMIT</c>.</summary>
    public async ValueTask<BranchOutcome> CommitOnePhaseAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_state != State.Active)
            {
                throw new InvalidOperationException($"Branch {Xid} cannot commit in one phase: it is {_state}.");
            }

            try
            {
                // An aborted transaction answers COMMIT with ROLLBACK and no error: find out first.
                await WroteNothingAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (PostgresException)
            {
                await RollbackQuietlyAsync().ConfigureAwait(false);
                _state = State.Finished;
                return BranchOutcome.RolledBack;
            }

            try
            {
                await Transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
                _state = State.Finished;
                return BranchOutcome.Committed;
            }
            catch (PostgresException)
            {
                // Refused at commit (deferred constraint, serialization failure): rolled back.
                _state = State.Finished;
                return BranchOutcome.RolledBack;
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
                    await TerminateBackendAsync(cancellationToken).ConfigureAwait(false);
                    _state = State.Finished;
                    return BranchOutcome.RolledBack;
                case State.Active:
                    await RollbackQuietlyAsync().ConfigureAwait(false);
                    _state = State.Finished;
                    return BranchOutcome.RolledBack;
                case State.Preparing:
                case State.Prepared:
                    var outcome = await _rm.RollbackAsync(Xid, default, cancellationToken).ConfigureAwait(false);
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

    private async Task TerminateBackendAsync(CancellationToken cancellationToken)
    {
        var pid = Connection.ProcessID;
        await using var admin = await _rm.DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var terminate = new NpgsqlCommand("SELECT pg_terminate_backend($1)", admin);
        terminate.Parameters.AddWithValue(pid);
        await terminate.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        _logger.BackendTerminated(Xid, pid);
    }

    private async Task<bool> WroteNothingAsync(CancellationToken cancellationToken)
    {
        await using var check = new NpgsqlCommand("SELECT pg_current_xact_id_if_assigned() IS NULL", Connection, Transaction);
        return (bool)(await check.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
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
