using Npgsql;
using RabbitMQ.Client.Exceptions;

namespace TwoPC.Participants.RabbitMq;

// The inbox table: creating it, handling a message inside the transaction that claims its id, telling an unreachable
// database from a failing handler, and cleaning up expired rows.
public sealed partial class InboxConsumer
{
    private async Task CreateInboxAsync(CancellationToken cancellationToken)
    {
        var create = _dataSource.CreateCommand(
            $"CREATE SCHEMA IF NOT EXISTS {_options.InboxSchema}; " +
            $"CREATE TABLE IF NOT EXISTS {_inbox} (consumer text NOT NULL, message_id text NOT NULL, received_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (consumer, message_id)); " +
            $"CREATE INDEX IF NOT EXISTS inbox_received_at ON {_inbox} USING brin (received_at)");
        await using var createScope = create.ConfigureAwait(false);
        try
        {
            await create.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (PostgresException ex) when (ex.SqlState is "23505" or "42P07")
        {
            // Created concurrently by another consumer.
        }
    }

    /// <summary>
    /// Whether <paramref name="exception"/> says the database could not be reached or is not serving (rather than
    /// that the handler failed): no connection could be opened (refused, timed out, pool exhausted), the
    /// connection broke (I/O error), the server is shutting down or starting (57P01-57P03), a connection
    /// exception (08xxx), insufficient resources (53xxx, e.g. 53300 too many connections) or a system error (58xxx).
    /// A command that timed out on a working connection is the handler's failure: it counts.
    /// </summary>
    internal static bool IsDatabaseUnavailable(Exception exception)
    {
        for (var ex = exception; ex is not null; ex = ex.InnerException)
        {
            switch (ex)
            {
                case DatabaseUnavailableException:
                    return true;
                case PostgresException pg:
                    return pg.SqlState.StartsWith("08", StringComparison.Ordinal) || pg.SqlState.StartsWith("53", StringComparison.Ordinal)
                        || pg.SqlState.StartsWith("58", StringComparison.Ordinal) || pg.SqlState is "57P01" or "57P02" or "57P03";
                case NpgsqlOperationInProgressException:
                    return false; // the handler used its connection concurrently: its own bug
                case NpgsqlException npgsql:
                    // No server error: the connection broke under the command (I/O), or the command timed out.
                    return HasInner<System.IO.IOException>(npgsql) || HasInner<System.Net.Sockets.SocketException>(npgsql);
            }
        }

        return false;
    }

    private static bool HasInner<T>(Exception exception)
        where T : Exception
    {
        for (var ex = exception.InnerException; ex is not null; ex = ex.InnerException)
        {
            if (ex is T)
            {
                return true;
            }
        }

        return false;
    }

    private static bool IsUnreachable(Exception exception) =>
        IsDatabaseUnavailable(exception) || exception is AlreadyClosedException or BrokerUnreachableException or System.IO.IOException;

    /// <returns><see langword="true"/> when the message was processed before (nothing was done).</returns>
    private async Task<bool> HandleInTransactionAsync(InboxMessage message, CancellationToken cancellationToken)
    {
        NpgsqlConnection connection;
        try
        {
            connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException or System.Net.Sockets.SocketException && !cancellationToken.IsCancellationRequested)
        {
            // Not one statement of the handler ran: whatever went wrong, it is not the message's fault.
            throw new DatabaseUnavailableException(ex);
        }

        await using var _ = connection.ConfigureAwait(false);
        var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using var transactionScope = transaction.ConfigureAwait(false);
        var claim = new NpgsqlCommand($"INSERT INTO {_inbox} (consumer, message_id) VALUES ($1, $2) ON CONFLICT DO NOTHING", connection, transaction);
        await using (claim.ConfigureAwait(false))
        {
            claim.Parameters.AddWithValue(_consumer);
            claim.Parameters.AddWithValue(message.MessageId);
            if (await claim.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 0)
            {
                await transaction.RollbackAsync(cancellationToken).ConfigureAwait(false);
                return true;
            }
        }

        await _handler(message, connection, transaction, cancellationToken).ConfigureAwait(false);
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return false;
    }

    /// <summary>Deletes inbox rows older than the retention, in bounded batches.</summary>
    public async Task<int> CleanupAsync(CancellationToken cancellationToken = default)
    {
        var command = _dataSource.CreateCommand(
            $"DELETE FROM {_inbox} WHERE ctid IN (SELECT ctid FROM {_inbox} WHERE consumer = $1 AND received_at < now() - $2 LIMIT $3)");
        await using var commandScope = command.ConfigureAwait(false);
        command.Parameters.AddWithValue(_consumer);
        command.Parameters.AddWithValue(_options.InboxRetention);
        command.Parameters.AddWithValue(_options.CleanupBatchSize);
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private async Task CleanupLoopAsync(CancellationToken stopping)
    {
        using var timer = new PeriodicTimer(_options.CleanupInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(stopping).ConfigureAwait(false))
            {
                try
                {
                    await CleanupAsync(stopping).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    _logger.CleanupFailed(ex, _options.Queue);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }
}
