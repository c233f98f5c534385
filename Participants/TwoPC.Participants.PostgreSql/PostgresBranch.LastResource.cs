using System.Globalization;
using Npgsql;
using NpgsqlTypes;
using TwoPC.Transactions;

namespace TwoPC.Participants.PostgreSql;

// The last-resource commit: this branch is never prepared; its COMMIT, with the commit marker, is the decision.
public sealed partial class PostgresBranch
{
    private const string NotNullViolation = "23502";
    private const string UniqueViolation = "23505";

    /// <summary>
    /// In one batch on the branch's connection: inserts the <c>'C'</c> marker of <paramref name="transactionId"/> — its
    /// state is <c>NULL</c>, and the NOT NULL constraint fails the insert, once <paramref name="deadline"/> passed on the
    /// server's clock — and <c>COMMIT</c>s. A failed insert aborts the transaction, so the <c>COMMIT</c> never runs.
    /// </summary>
    internal async ValueTask<MarkerCommitOutcome> CommitWithMarkerAsync(CommitMarkerSql sql, GlobalTransactionId transactionId, DateTimeOffset deadline, ReadOnlyMemory<byte> payload, Func<PostgresBranch, ValueTask>? betweenInsertAndCommit, CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_state != State.Active)
            {
                throw new InvalidOperationException($"Branch {Xid} cannot commit with a marker: it is {_state}.");
            }

            var gtrid = transactionId.ToString();
            _state = State.Preparing;
            try
            {
                var insert = new NpgsqlBatchCommand(sql.InsertCommitted);
                insert.Parameters.Add(new NpgsqlParameter<string> { TypedValue = gtrid, NpgsqlDbType = NpgsqlDbType.Text });
                insert.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = deadline.UtcDateTime, NpgsqlDbType = NpgsqlDbType.TimestampTz });
                insert.Parameters.Add(new NpgsqlParameter<byte[]> { TypedValue = payload.ToArray(), NpgsqlDbType = NpgsqlDbType.Bytea });
                var batch = new NpgsqlBatch(Connection, Transaction);
                await using (batch.ConfigureAwait(false))
                {
                    batch.BatchCommands.Add(insert);
                    if (betweenInsertAndCommit is null)
                    {
                        batch.BatchCommands.Add(new NpgsqlBatchCommand("COMMIT"));
                        await batch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                    }
                    else
                    {
                        // The crash tests: the marker inserted, not yet committed.
                        await batch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                        await betweenInsertAndCommit(this).ConfigureAwait(false);
                        await Transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
                    }
                }

                _state = State.Finished;
                return MarkerCommitOutcome.Success;
            }
            catch (PostgresException ex) when (ex.InvariantSeverity == "ERROR")
            {
                // Refused (the deadline, a fence, a deferred constraint or serialization failure at COMMIT), session intact:
                // the transaction is aborted, and rolled back now.
                await RollbackQuietlyAsync().ConfigureAwait(false);
                _state = State.Finished;
                var reason = ex.SqlState switch
                {
                    NotNullViolation when ex.ColumnName == "state" => "the transaction's deadline passed on the server's clock",
                    UniqueViolation when ex.TableName == "commit_markers" => "recovery fenced the transaction (an aborted marker exists)",
                    _ => $"{ex.SqlState}: {ex.MessageText}",
                };
                _logger.MarkerRefused(Xid, gtrid, reason);
                return MarkerCommitOutcome.Refused(reason);
            }
            catch (Exception ex) when (ex is NpgsqlException or IOException or TimeoutException or OperationCanceledException or InvalidOperationException)
            {
                // The COMMIT may have run: the coordinator fences to learn what happened.
                _state = State.Finished;
                _logger.MarkerCommitInterrupted(ex, Xid, gtrid);
                throw new PostgresOutcomeUnknownException(
                    string.Create(CultureInfo.InvariantCulture, $"The commit with marker of branch {Xid} (transaction {gtrid}) was interrupted: its outcome is unknown until the transaction is fenced."), ex);
            }
        }
        finally
        {
            await ReleaseConnectionAsync().ConfigureAwait(false);
            _gate.Release();
        }
    }
}
