using Npgsql;
using NpgsqlTypes;
using TwoPC.Transactions;

namespace TwoPC.Participants.PostgreSql;

// The commit-marker store of the last-resource commit: <schema>.commit_markers, created on first use (the DDL is in
// the package README for a DBA who creates it by hand). A 'C' row is a committed decision with its intentions list;
// an 'A' row is recovery's fence. The primary key on gtrid is what makes the fence exact.
public sealed partial class PostgresResourceManager
{
    private const string DuplicateTable = "42P07";
    private const string DuplicateSchema = "42P06";
    private const string UniqueViolation = "23505";

    private static readonly TimeSpan FencePurgePeriod = TimeSpan.FromHours(1);

    private volatile bool _markersReady;
    private long _lastFencePurge;

    /// <summary>Test hook: runs between the marker INSERT and the COMMIT (two round trips instead of one).</summary>
    internal Func<PostgresBranch, ValueTask>? BetweenMarkerInsertAndCommit { get; set; }

    /// <inheritdoc />
    /// <remarks>
    /// <paramref name="branch"/> must be a live branch of this resource manager. The first call creates the marker table
    /// when it does not exist (one extra round trip, once per process).
    /// </remarks>
    public async ValueTask<MarkerCommitOutcome> CommitWithMarkerAsync(ITransactionBranch branch, GlobalTransactionId transactionId, DateTimeOffset deadline, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        if (branch is not PostgresBranch postgres || !ReferenceEquals(postgres.ResourceManager, this))
        {
            throw new ArgumentException($"Only a branch of PostgreSQL resource manager '{Name}' can commit with its markers.", nameof(branch));
        }

        await EnsureMarkersAsync(cancellationToken).ConfigureAwait(false);
        return await postgres.CommitWithMarkerAsync(_commitMarkers, transactionId, deadline, payload, BetweenMarkerInsertAndCommit, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    /// <remarks>One round trip on a pooled connection: <c>INSERT ... 'A' ... ON CONFLICT DO NOTHING</c>, then the row's state.</remarks>
    public async ValueTask<MarkerState> FenceAsync(GlobalTransactionId transactionId, CancellationToken cancellationToken)
    {
        await EnsureReadyAsync(cancellationToken).ConfigureAwait(false);
        await EnsureMarkersAsync(cancellationToken).ConfigureAwait(false);
        var connection = await DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var connectionScope = connection.ConfigureAwait(false);
        var batch = new NpgsqlBatch(connection);
        await using var batchScope = batch.ConfigureAwait(false);
        var gtrid = transactionId.ToString();
        var fence = new NpgsqlBatchCommand(_commitMarkers.InsertAborted);
        fence.Parameters.Add(new NpgsqlParameter<string> { TypedValue = gtrid, NpgsqlDbType = NpgsqlDbType.Text });
        var read = new NpgsqlBatchCommand(_commitMarkers.ReadState);
        read.Parameters.Add(new NpgsqlParameter<string> { TypedValue = gtrid, NpgsqlDbType = NpgsqlDbType.Text });
        batch.BatchCommands.Add(fence);
        batch.BatchCommands.Add(read);
        var state = await batch.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
        return state switch
        {
            "C" => MarkerState.Committed,
            "A" => MarkerState.Aborted,
            _ => throw new InvalidOperationException($"The fence of transaction {gtrid} in '{Name}' read no marker state ({state ?? "none"})."),
        };
    }

    /// <inheritdoc />
    /// <remarks>A database whose marker table does not exist has no markers (nothing is created by reading). At most once an
    /// hour, a read from the start also purges fences older than <see cref="PostgresResourceManagerOptions.FenceRetention"/>.</remarks>
    public async ValueTask<IReadOnlyList<CommitMarker>> ReadCommittedMarkersAsync(string? after, int maxCount, CancellationToken cancellationToken)
    {
        await EnsureReadyAsync(cancellationToken).ConfigureAwait(false);
        var connection = await DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var connectionScope = connection.ConfigureAwait(false);
        if (!_markersReady)
        {
            var exists = new NpgsqlCommand("SELECT to_regclass($1) IS NOT NULL", connection);
            await using var existsScope = exists.ConfigureAwait(false);
            exists.Parameters.AddWithValue(_commitMarkers.Table);
            if (!(bool)(await exists.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!)
            {
                return [];
            }

            _markersReady = true;
        }

        if (after is null)
        {
            await PurgeFencesAsync(connection, cancellationToken).ConfigureAwait(false);
        }

        var markers = new List<CommitMarker>();
        var read = new NpgsqlCommand(_commitMarkers.ReadCommitted, connection);
        await using var readScope = read.ConfigureAwait(false);
        read.Parameters.Add(new NpgsqlParameter<string> { TypedValue = after ?? string.Empty, NpgsqlDbType = NpgsqlDbType.Text });
        read.Parameters.Add(new NpgsqlParameter<int> { TypedValue = maxCount, NpgsqlDbType = NpgsqlDbType.Integer });
        var reader = await read.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await using (reader.ConfigureAwait(false))
        {
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                // A row that is not a TwoPC transaction id is not ours (nothing here writes one).
                if (GlobalTransactionId.TryParse(reader.GetString(0), out var id))
                {
                    markers.Add(new CommitMarker(id, reader.IsDBNull(1) ? ReadOnlyMemory<byte>.Empty : reader.GetFieldValue<byte[]>(1)));
                }
            }
        }

        return markers;
    }

    /// <inheritdoc />
    public async ValueTask DeleteMarkersAsync(IReadOnlyCollection<GlobalTransactionId> transactionIds, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(transactionIds);
        if (transactionIds.Count == 0)
        {
            return;
        }

        await EnsureReadyAsync(cancellationToken).ConfigureAwait(false);
        var connection = await DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var connectionScope = connection.ConfigureAwait(false);
        var delete = new NpgsqlCommand(_commitMarkers.DeleteCommitted, connection);
        await using var deleteScope = delete.ConfigureAwait(false);
        delete.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = [.. transactionIds.Select(id => id.ToString())], NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
        await delete.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private async Task PurgeFencesAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        var now = Time.GetTimestamp();
        var last = Interlocked.Read(ref _lastFencePurge);
        if (last != 0 && Time.GetElapsedTime(last, now) < FencePurgePeriod || Interlocked.CompareExchange(ref _lastFencePurge, now, last) != last)
        {
            return;
        }

        var purge = new NpgsqlCommand(_commitMarkers.PurgeAborted, connection);
        await using var purgeScope = purge.ConfigureAwait(false);
        purge.Parameters.Add(new NpgsqlParameter<TimeSpan> { TypedValue = Options.FenceRetention, NpgsqlDbType = NpgsqlDbType.Interval });
        var purged = await purge.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        if (purged > 0)
        {
            _logger.FencesPurged(Name, purged, Options.FenceRetention);
        }
    }

    /// <summary>Creates the schema and the marker table unless they exist (once per process; concurrent creators are tolerated).</summary>
    private async ValueTask EnsureMarkersAsync(CancellationToken cancellationToken)
    {
        if (_markersReady)
        {
            return;
        }

        await EnsureReadyAsync(cancellationToken).ConfigureAwait(false);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                var connection = await DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
                await using var connectionScope = connection.ConfigureAwait(false);

                // Looked up first: a role without CREATE on the database or schema can use a table a DBA created.
                var exists = new NpgsqlCommand("SELECT to_regclass($1) IS NOT NULL", connection);
                await using var existsScope = exists.ConfigureAwait(false);
                exists.Parameters.AddWithValue(_commitMarkers.Table);
                if ((bool)(await exists.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!)
                {
                    break;
                }

                var create = new NpgsqlCommand(_commitMarkers.Create, connection);
                await using var createScope = create.ConfigureAwait(false);
                await create.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                break;
            }
            catch (PostgresException ex) when (attempt < 3 && ex.SqlState is UniqueViolation or DuplicateTable or DuplicateSchema)
            {
                // Another process created it at the same moment (IF NOT EXISTS is not atomic in the catalog): look again.
            }
        }

        _markersReady = true;
        _logger.MarkersReady(Name, _commitMarkers.Table);
    }
}

/// <summary>The SQL of the commit-marker table in one schema.</summary>
internal sealed class CommitMarkerSql(string schema)
{
    public string Table { get; } = schema + ".commit_markers";

    /// <summary>The DDL (also in the package README).</summary>
    public string Create => $"""
        CREATE SCHEMA IF NOT EXISTS {schema};
        CREATE TABLE IF NOT EXISTS {Table} (
            gtrid      text COLLATE "C" PRIMARY KEY,
            state      char(1) NOT NULL CHECK (state IN ('C', 'A')),
            deadline   timestamptz NOT NULL,
            payload    bytea,
            created_at timestamptz NOT NULL DEFAULT now()
        )
        """;

    /// <summary>The decision: state is NULL (and the insert fails) once the deadline passed on the server's clock.</summary>
    public string InsertCommitted => $"INSERT INTO {Table} (gtrid, state, deadline, payload) VALUES ($1, CASE WHEN clock_timestamp() < $2 THEN 'C' END, $2, $3)";

    public string InsertAborted => $"INSERT INTO {Table} (gtrid, state, deadline) VALUES ($1, 'A', now()) ON CONFLICT (gtrid) DO NOTHING";

    public string ReadState => $"SELECT state FROM {Table} WHERE gtrid = $1";

    public string ReadCommitted => $"SELECT gtrid, payload FROM {Table} WHERE state = 'C' AND gtrid > $1 ORDER BY gtrid LIMIT $2";

    public string DeleteCommitted => $"DELETE FROM {Table} WHERE state = 'C' AND gtrid = ANY($1)";

    public string PurgeAborted => $"DELETE FROM {Table} WHERE state = 'A' AND created_at < now() - $1";
}
