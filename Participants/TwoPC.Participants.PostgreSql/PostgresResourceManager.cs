using System.Diagnostics.Metrics;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using TwoPC.Diagnostics;
using TwoPC.Protocol;
using TwoPC.Transactions;

namespace TwoPC.Participants.PostgreSql;

/// <summary>
/// A PostgreSQL database as a TwoPC resource manager: branches are PostgreSQL transactions finished with
/// <c>PREPARE TRANSACTION '&lt;xid&gt;'</c>; phase 2 is <c>COMMIT PREPARED</c> / <c>ROLLBACK PREPARED</c> from any
/// pooled connection; recovery reads <c>pg_prepared_xacts</c>.
/// </summary>
/// <remarks>
/// Each prepared branch also writes a marker row (its gid) inside its own transaction, so when a
/// commit or rollback finds no prepared transaction (SQLSTATE 42704) the marker tells "already committed"
/// from "rolled back by someone else" — the latter is a heuristic outcome, reported, never ignored.
/// Create it with <see cref="CreateAsync"/>, which fails fast on a server with
/// <c>max_prepared_transactions = 0</c>.
/// </remarks>
public sealed partial class PostgresResourceManager : IResourceManager, IPreparedAgeReporter, IDisposable
{
    private const string UndefinedObject = "42704";

    private readonly ILogger _logger;
    private readonly Meter _meter;
    private readonly string _markers;
    private double _oldestPreparedSeconds;

    private PostgresResourceManager(string name, NpgsqlDataSource dataSource, PostgresResourceManagerOptions options, ILogger logger, IMeterFactory? meterFactory)
    {
        Name = name;
        DataSource = dataSource;
        Options = options;
        _logger = logger;
        _markers = options.MarkerSchema + ".markers";
        _meter = meterFactory?.Create(new MeterOptions(TwoPCTelemetry.MeterName)) ?? new Meter(TwoPCTelemetry.MeterName);
        _meter.CreateObservableGauge(
            "twopc.postgres.oldest_prepared_age",
            () => new Measurement<double>(Volatile.Read(ref _oldestPreparedSeconds), new KeyValuePair<string, object?>("twopc.resource_manager", Name)),
            "s",
            "Age of the oldest prepared transaction in the database at the last recovery scan (prepared transactions hold locks and hold back VACUUM).");
    }

    /// <inheritdoc />
    public string Name { get; }

    /// <inheritdoc />
    /// <remarks>PostgreSQL's <c>COMMIT</c> and <c>COMMIT PREPARED</c> are atomic.</remarks>
    public bool CommitsAtomically => true;

    /// <summary>The data source branches and phase 2 take connections from.</summary>
    public NpgsqlDataSource DataSource { get; }

    /// <summary>The settings.</summary>
    public PostgresResourceManagerOptions Options { get; }

    /// <summary>Age of the oldest prepared transaction in this database at the last <see cref="RecoverAsync"/>, or <see langword="null"/> when none.</summary>
    public TimeSpan? OldestPreparedAge { get; private set; }

    /// <summary>
    /// Creates the resource manager and checks the server: fails with <see cref="PostgresConfigurationException"/>
    /// when <c>max_prepared_transactions</c> is 0, warns when it is below the pool size, and creates the marker table.
    /// </summary>
    /// <param name="name">The unique, stable name to register with the coordinator (for example the database's name).</param>
    /// <param name="dataSource">Where to connect. The connecting role must own its prepared transactions (or be superuser) to commit them.</param>
    /// <param name="options">Settings, or the defaults.</param>
    /// <param name="loggerFactory">For logs, or none.</param>
    /// <param name="meterFactory">For metrics, or the global meter.</param>
    /// <param name="cancellationToken">Cancels the checks.</param>
    public static async Task<PostgresResourceManager> CreateAsync(
        string name,
        NpgsqlDataSource dataSource,
        PostgresResourceManagerOptions? options = null,
        ILoggerFactory? loggerFactory = null,
        IMeterFactory? meterFactory = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(dataSource);
        options ??= new PostgresResourceManagerOptions();
        if (!SchemaName().IsMatch(options.MarkerSchema))
        {
            throw new ArgumentException($"PostgresResourceManagerOptions.MarkerSchema '{options.MarkerSchema}' must match [a-z_][a-z0-9_]*.", nameof(options));
        }

        var logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger("TwoPC.Participants.PostgreSql");
        var rm = new PostgresResourceManager(name, dataSource, options, logger, meterFactory);
        await rm.CheckServerAsync(cancellationToken).ConfigureAwait(false);
        return rm;
    }

    /// <summary>
    /// Enlists a new branch of this database in <paramref name="transaction"/>: opens a connection, begins a
    /// transaction, and bounds its lock waits by the transaction's deadline. Do the branch's work on
    /// <see cref="PostgresBranch.Connection"/> (Dapper works on it directly).
    /// </summary>
    public ValueTask<PostgresBranch> EnlistAsync(GlobalTransaction transaction, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        return transaction.EnlistAsync((xid, ct) => BeginBranchAsync(xid, transaction.Deadline, ct), cancellationToken);
    }

    /// <summary>
    /// Begins a branch under an XID a coordinator in another process assigned (a remote participant: the
    /// coordinator, not this process, decides). Lock waits are bounded by <paramref name="deadline"/>; prepare
    /// with <see cref="PostgresBranch.PrepareAsync"/> at the end of the work, and the coordinator finishes it
    /// with <see cref="CommitAsync"/> or <see cref="RollbackAsync"/> by XID.
    /// </summary>
    /// <exception cref="ArgumentException">The XID cannot be a PostgreSQL gid.</exception>
    public async ValueTask<PostgresBranch> BeginBranchAsync(Xid xid, DateTimeOffset deadline, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(xid);

        // Validate before any work: a branch whose gid could not be prepared must not exist.
        _ = PostgresGid.Literal(xid);
        var connection = await DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var tx = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            if (Options.BoundLockWaitsByDeadline)
            {
                // Lock waits end at the deadline (that is what breaks a distributed deadlock); statements get a
                // little longer so the two timers never fire together.
                var ms = Math.Max(1, (long)Math.Ceiling((deadline - TimeProvider.System.GetUtcNow()).TotalMilliseconds));
                await using var bound = new NpgsqlCommand($"SET LOCAL lock_timeout = {ms}; SET LOCAL statement_timeout = {ms + 1000}", connection, tx);
                await bound.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }

            return new PostgresBranch(this, xid, connection, tx, _logger, deadline, TimeProvider.System);
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Whether a transaction prepared under <paramref name="xid"/> waits in <c>pg_prepared_xacts</c> of this database.</summary>
    public async ValueTask<bool> IsPreparedAsync(Xid xid, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(xid);
        await using var connection = await DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var query = new NpgsqlCommand("SELECT EXISTS (SELECT 1 FROM pg_prepared_xacts WHERE gid = @gid AND database = current_database())", connection);
        query.Parameters.AddWithValue("gid", xid.ToString());
        return (bool)(await query.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
    }

    /// <inheritdoc />
    public async ValueTask<BranchOutcome> CommitAsync(Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken)
    {
        var gid = PostgresGid.Literal(xid);
        try
        {
            await ExecuteAsync("COMMIT PREPARED " + gid, cancellationToken).ConfigureAwait(false);
            return BranchOutcome.Committed;
        }
        catch (PostgresException ex) when (ex.SqlState == UndefinedObject)
        {
            return await ResolvedAlreadyAsync(xid, "COMMIT", cancellationToken).ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public async ValueTask<BranchOutcome> RollbackAsync(Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken)
    {
        var gid = PostgresGid.Literal(xid);
        try
        {
            await ExecuteAsync("ROLLBACK PREPARED " + gid, cancellationToken).ConfigureAwait(false);
            return BranchOutcome.RolledBack;
        }
        catch (PostgresException ex) when (ex.SqlState == UndefinedObject)
        {
            return await ResolvedAlreadyAsync(xid, "ROLLBACK", cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Lists the TwoPC branches prepared in this database (<c>pg_prepared_xacts</c>, filtered to the current
    /// database and TwoPC's XID format; other gids are not ours). Also measures the oldest prepared
    /// transaction and deletes a bounded batch of expired marker rows.
    /// </summary>
    public async ValueTask<IReadOnlyCollection<InDoubtBranch>> RecoverAsync(CancellationToken cancellationToken)
    {
        var branches = new List<InDoubtBranch>();
        TimeSpan? oldestAge = null;
        await using var connection = await DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);

        // One scan serves both the in-doubt list (TwoPC's format only) and the age of the oldest prepared
        // transaction of any kind (all of them hold locks and hold back VACUUM).
        await using (var scan = new NpgsqlCommand(
            "SELECT gid, prepared, now() - prepared FROM pg_prepared_xacts WHERE database = current_database() ORDER BY prepared", connection))
        await using (var reader = await scan.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                oldestAge ??= reader.GetFieldValue<TimeSpan>(2);
                if (Xid.TryParse(reader.GetString(0), out var xid) && xid.FormatId == Xid.TwoPCFormatId)
                {
                    branches.Add(new InDoubtBranch(xid, reader.GetFieldValue<DateTimeOffset>(1)));
                }
            }
        }

        OldestPreparedAge = oldestAge;
        Volatile.Write(ref _oldestPreparedSeconds, oldestAge?.TotalSeconds ?? 0);

        await using (var cleanup = new NpgsqlCommand(
            $"DELETE FROM {_markers} WHERE gid IN (SELECT gid FROM {_markers} WHERE created_at < now() - @retention LIMIT @batch)", connection))
        {
            cleanup.Parameters.AddWithValue("retention", Options.MarkerRetention);
            cleanup.Parameters.AddWithValue("batch", Options.MarkerCleanupBatchSize);
            var deleted = await cleanup.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            if (deleted > 0)
            {
                _logger.MarkersDeleted(Name, deleted);
            }
        }

        return branches;
    }

    /// <summary>Forgets a heuristically completed branch: deletes its marker row.</summary>
    public async ValueTask ForgetAsync(Xid xid, CancellationToken cancellationToken)
    {
        await using var connection = await DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand($"DELETE FROM {_markers} WHERE gid = @gid", connection);
        command.Parameters.AddWithValue("gid", xid.ToString());
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public void Dispose() => _meter.Dispose();

    /// <inheritdoc />
    public override string ToString() => Name;

    internal string MarkerInsertIfWritten(string gidLiteral) =>
        $"INSERT INTO {_markers} (gid) SELECT {gidLiteral} WHERE pg_current_xact_id_if_assigned() IS NOT NULL";

    private async Task ExecuteAsync(string sql, CancellationToken cancellationToken)
    {
        await using var connection = await DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>No prepared transaction under the gid: its marker row says whether it committed.</summary>
    private async Task<BranchOutcome> ResolvedAlreadyAsync(Xid xid, string operation, CancellationToken cancellationToken)
    {
        await using var connection = await DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand($"SELECT EXISTS (SELECT 1 FROM {_markers} WHERE gid = @gid)", connection);
        command.Parameters.AddWithValue("gid", xid.ToString());
        var committed = (bool)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
        var outcome = committed ? BranchOutcome.Committed : BranchOutcome.RolledBack;
        if ((operation == "COMMIT") == committed)
        {
            _logger.AlreadyDone(xid, operation, outcome); // the expected repeat: nothing anyone must look at
        }
        else
        {
            _logger.AlreadyResolved(xid, operation, committed ? "present" : "absent", outcome);
        }

        return outcome;
    }

    private async Task CheckServerAsync(CancellationToken cancellationToken)
    {
        await using var connection = await DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        int maxPrepared, maxConnections;
        await using (var settings = new NpgsqlCommand(
            "SELECT current_setting('max_prepared_transactions')::int, current_setting('max_connections')::int", connection))
        await using (var reader = await settings.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
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

        // Only when missing: even CREATE ... IF NOT EXISTS takes a table lock that waits for prepared
        // branches holding their marker rows, and recovery must start while such branches exist.
        await using (var exists = new NpgsqlCommand($"SELECT to_regclass('{_markers}') IS NOT NULL", connection))
        {
            if ((bool)(await exists.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!)
            {
                _logger.Ready(Name, maxPrepared, maxConnections);
                return;
            }
        }

        await using (var create = new NpgsqlCommand(
            $"CREATE SCHEMA IF NOT EXISTS {Options.MarkerSchema}; " +
            $"CREATE TABLE IF NOT EXISTS {_markers} (gid text PRIMARY KEY, created_at timestamptz NOT NULL DEFAULT now()); " +
            $"CREATE INDEX IF NOT EXISTS markers_created_at ON {_markers} USING brin (created_at)", connection))
        {
            try
            {
                await create.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (PostgresException ex) when (ex.SqlState is "23505" or "42P07")
            {
                // Another process created it at the same moment.
            }
        }

        _logger.Ready(Name, maxPrepared, maxConnections);
    }

    [GeneratedRegex("^[a-z_][a-z0-9_]{0,62}$")]
    private static partial Regex SchemaName();
}
