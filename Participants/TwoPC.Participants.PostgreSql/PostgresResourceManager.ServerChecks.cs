using Npgsql;

namespace TwoPC.Participants.PostgreSql;

// The server checks: run when the resource manager is created and, while the server was unreachable, on first use
// (max_prepared_transactions must allow PREPARE TRANSACTION); and what counts as the server being unreachable.
public sealed partial class PostgresResourceManager
{
    /// <summary>A transient failure to reach the server (refused, reset, timed out, shutting down, starting up).</summary>
    internal static bool IsUnreachable(Exception ex) => ex switch
    {
        PostgresException pg => pg.SqlState is "57P01" or "57P02" or "57P03" or "53300" || pg.SqlState.StartsWith("08", StringComparison.Ordinal),
        NpgsqlException npgsql => npgsql.IsTransient,
        _ => ex is System.Net.Sockets.SocketException or IOException or TimeoutException,
    };

    private ValueTask EnsureReadyAsync(CancellationToken cancellationToken) => _ready ? ValueTask.CompletedTask : CheckOnFirstUseAsync(cancellationToken);

    private async ValueTask CheckOnFirstUseAsync(CancellationToken cancellationToken)
    {
        try
        {
            await _checkRetry.ExecuteAsync(static (rm, ct) => new ValueTask(rm.CheckServerAsync(ct)), this, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (IsUnreachable(ex) && !cancellationToken.IsCancellationRequested)
        {
            // Still an NpgsqlException (transient), so callers that retry connection failures keep doing so.
            throw new NpgsqlException($"PostgreSQL resource manager '{Name}' cannot reach its server ({ex.Message}); it was not checked yet, and every operation fails until it can be reached.", ex);
        }
    }

    private async Task CheckServerAsync(CancellationToken cancellationToken)
    {
        var connection = await DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var connectionScope = connection.ConfigureAwait(false);
        int maxPrepared, maxConnections;
        var settings = new NpgsqlCommand(
            "SELECT current_setting('max_prepared_transactions')::int, current_setting('max_connections')::int", connection);
        await using var settingsScope = settings.ConfigureAwait(false);
        var reader = await settings.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await using (reader.ConfigureAwait(false))
        {
            await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            maxPrepared = reader.GetInt32(0);
            maxConnections = reader.GetInt32(1);
        }

        if (maxPrepared == 0)
        {
            throw new PostgresConfigurationException(
                $"PostgreSQL at {connection.Host}:{connection.Port}/{connection.Database} has max_prepared_transactions = 0, so PREPARE TRANSACTION is disabled and it cannot take part in two-phase commit. " +
                $"Set max_prepared_transactions to at least the number of concurrent transactions (PostgreSQL suggests max_connections = {maxConnections}) in postgresql.conf or with -c max_prepared_transactions={maxConnections}, and restart the server (it changes only at restart).");
        }

        var poolSize = new NpgsqlConnectionStringBuilder(DataSource.ConnectionString).MaxPoolSize;
        if (maxPrepared < poolSize)
        {
            _logger.FewPreparedTransactions(Name, maxPrepared, poolSize);
        }

        _ready = true;
        _logger.Ready(Name, maxPrepared, maxConnections);
    }
}
