using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using Polly;
using Polly.Retry;
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
/// A Yes vote carries the branch's 64-bit transaction id (<c>xid8</c>) as recovery data, logged with the commit
/// decision. When a commit or rollback finds no prepared transaction under the gid (SQLSTATE 42704: it was finished
/// before, by us or by someone else), <c>pg_xact_status</c> of that id tells "already committed" from "rolled back" —
/// the latter, for a commit, is a heuristic outcome, reported, never ignored. PostgreSQL keeps that evidence itself, so
/// nothing is written per branch and nothing has to be cleaned up. Create it with <see cref="CreateAsync"/>, which
/// checks the server when it is reachable (failing fast on <c>max_prepared_transactions = 0</c>) and otherwise defers
/// the checks to first use, so a coordinator can start (and recover its other resources) while this server is down.
/// </remarks>
public sealed partial class PostgresResourceManager : IResourceManager, ICommitMarkerStore, IPreparedAgeReporter, IDisposable
{
    private const string UndefinedObject = "42704";
    private const string InvalidParameterValue = "22023";

    /// <summary>How many prepared branches' transaction ids are remembered for phase-2 calls that bring no recovery data.</summary>
    private const int RememberedCapacity = 65_536;

    /// <summary>How long a one-phase commit whose answer was lost waits for PostgreSQL to finish the transaction.</summary>
    private static readonly TimeSpan OnePhaseResolveBudget = TimeSpan.FromSeconds(15);

    private readonly ILogger _logger;
    private readonly Meter _meter;
    private readonly Counter<long> _lookups;
    private readonly string _legacyMarkers;
    private readonly CommitMarkerSql _commitMarkers;
    private readonly ResiliencePipeline _checkRetry;
    private readonly ResiliencePipeline _resolveRetry;
    private readonly ConcurrentDictionary<string, ulong> _prepared = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<string> _preparedOrder = new();
    private volatile bool _ready;
    private double _oldestPreparedSeconds;

    private PostgresResourceManager(string name, NpgsqlDataSource dataSource, PostgresResourceManagerOptions options, ILogger logger, IMeterFactory? meterFactory, TimeProvider time)
    {
        Name = name;
        Time = time;
        DataSource = dataSource;
        Options = options;
        _logger = logger;
        _legacyMarkers = options.MarkerSchema + ".markers";
        _commitMarkers = new CommitMarkerSql(options.MarkerSchema);
        _meter = meterFactory?.Create(new MeterOptions(TwoPCTelemetry.MeterName)) ?? new Meter(TwoPCTelemetry.MeterName);
        _meter.CreateObservableGauge(
            "twopc.postgres.oldest_prepared_age",
            () => new Measurement<double>(Volatile.Read(ref _oldestPreparedSeconds), new KeyValuePair<string, object?>("twopc.resource_manager", Name)),
            "s",
            "Age of the oldest prepared transaction in the database at the last recovery scan (prepared transactions hold locks and hold back VACUUM).");
        _lookups = _meter.CreateCounter<long>(
            "twopc.postgres.outcome_lookups",
            "{lookup}",
            "Outcomes PostgreSQL was asked for because the branch had already finished (a repeated COMMIT/ROLLBACK PREPARED) or a one-phase COMMIT's answer was lost; tagged with the answer (Unknown: nothing could tell).");

        // The server checks on first use: a few quick tries, then the caller (the coordinator retries phase 2 and
        // recovery passes) gets the connection error and comes back later.
        _checkRetry = new ResiliencePipelineBuilder()
            .AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = new PredicateBuilder().Handle<Exception>(IsUnreachable),
                MaxRetryAttempts = 3,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = TimeSpan.FromMilliseconds(100),
                OnRetry = args =>
                {
                    _logger.CheckRetry(args.Outcome.Exception, Name, args.AttemptNumber + 1);
                    return default;
                },
            })
            .Build();

        // A one-phase commit's outcome: asked again while the transaction is still finishing or the server is unreachable.
        _resolveRetry = new ResiliencePipelineBuilder()
            .AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = new PredicateBuilder().Handle<Exception>(ex => ex is StillInProgressException || IsUnreachable(ex)),
                MaxRetryAttempts = int.MaxValue,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = TimeSpan.FromMilliseconds(50),
                MaxDelay = TimeSpan.FromSeconds(1),
            })
            .Build();
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

    private TimeProvider Time { get; }

    /// <summary>Age of the oldest prepared transaction in this database at the last <see cref="RecoverAsync"/>, or <see langword="null"/> when none.</summary>
    public TimeSpan? OldestPreparedAge { get; private set; }

    /// <summary>
    /// Creates the resource manager and checks the server: fails with <see cref="PostgresConfigurationException"/>
    /// when <c>max_prepared_transactions</c> is 0 and warns when it is below the pool size. When the server cannot be
    /// reached, the resource manager is created anyway (a warning is logged) and the checks run on first use — every
    /// operation then fails with the connection error, or the configuration error, until they pass.
    /// </summary>
    /// <param name="name">The unique, stable name to register with the coordinator (for example the database's name).</param>
    /// <param name="dataSource">Where to connect. The connecting role must own its prepared transactions (or be superuser) to commit them.</param>
    /// <param name="options">Settings, or the defaults.</param>
    /// <param name="loggerFactory">For logs, or none.</param>
    /// <param name="meterFactory">For metrics, or the global meter.</param>
    /// <param name="timeProvider">The clock branch deadlines are read against (the coordinator's), or the system clock.</param>
    /// <param name="cancellationToken">Cancels the checks.</param>
    public static async Task<PostgresResourceManager> CreateAsync(
        string name,
        NpgsqlDataSource dataSource,
        PostgresResourceManagerOptions? options = null,
        ILoggerFactory? loggerFactory = null,
        IMeterFactory? meterFactory = null,
        TimeProvider? timeProvider = null,
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
        var rm = new PostgresResourceManager(name, dataSource, options, logger, meterFactory, timeProvider ?? TimeProvider.System);
        try
        {
            await rm.CheckServerAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (IsUnreachable(ex) && !cancellationToken.IsCancellationRequested)
        {
            // Not reachable now: the coordinator must still start and recover what it can reach; checked on first use.
            logger.ServerUnreachableAtStart(ex, name);
        }

        return rm;
    }

    /// <summary>
    /// Enlists a new branch of this database in <paramref name="transaction"/>: opens a connection and begins a
    /// transaction (Npgsql sends the <c>BEGIN</c> with the first statement: no round trip yet). Its lock waits end at
    /// the transaction's deadline, when the coordinator's timeout reaper rolls it back (see
    /// <see cref="PostgresResourceManagerOptions.BoundLockWaitsByDeadline"/>). Do the branch's work on
    /// <see cref="PostgresBranch.Connection"/> (Dapper works on it directly).
    /// </summary>
    public ValueTask<PostgresBranch> EnlistAsync(GlobalTransaction transaction, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        var setLocal = Options.BoundLockWaitsByDeadline ?? false;
        // Enlisted with this resource manager named up front, so the coordinator can make it the last resource.
        return transaction.EnlistForAsync(this, (xid, ct) => BeginAsync(xid, transaction.Deadline, setLocal, ct), cancellationToken);
    }

    /// <summary>
    /// Begins a branch under an XID a coordinator in another process assigned (a remote participant: the
    /// coordinator, not this process, decides). Lock waits are bounded by <paramref name="deadline"/>; prepare
    /// with <see cref="PostgresBranch.PrepareAsync"/> at the end of the work, and the coordinator finishes it
    /// with <see cref="CommitAsync"/> or <see cref="RollbackAsync"/> by XID.
    /// </summary>
    /// <exception cref="ArgumentException">The XID cannot be a PostgreSQL gid.</exception>
    public ValueTask<PostgresBranch> BeginBranchAsync(Xid xid, DateTimeOffset deadline, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(xid);

        // No coordinator in this process ends a lock wait at the deadline, so the branch bounds its own.
        return BeginAsync(xid, deadline, Options.BoundLockWaitsByDeadline ?? true, cancellationToken);
    }

    private async ValueTask<PostgresBranch> BeginAsync(Xid xid, DateTimeOffset deadline, bool setLocal, CancellationToken cancellationToken)
    {
        // Validate before any work: a branch whose gid could not be prepared must not exist.
        _ = PostgresGid.Literal(xid);
        await EnsureReadyAsync(cancellationToken).ConfigureAwait(false);
        var connection = await DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var tx = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            if (setLocal)
            {
                // Lock waits end at the deadline (that is what breaks a distributed deadlock); statements get a
                // little longer so the two timers never fire together.
                var ms = Math.Max(1, (long)Math.Ceiling((deadline - Time.GetUtcNow()).TotalMilliseconds));
                var bound = new NpgsqlCommand($"SET LOCAL lock_timeout = {ms}; SET LOCAL statement_timeout = {ms + 1000}", connection, tx);
                await using var boundScope = bound.ConfigureAwait(false);
                await bound.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }

            return new PostgresBranch(this, xid, connection, tx, _logger, deadline, Time);
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
        await EnsureReadyAsync(cancellationToken).ConfigureAwait(false);
        var connection = await DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var connectionScope = connection.ConfigureAwait(false);
        var query = new NpgsqlCommand("SELECT EXISTS (SELECT 1 FROM pg_prepared_xacts WHERE gid = @gid AND database = current_database())", connection);
        await using var queryScope = query.ConfigureAwait(false);
        query.Parameters.AddWithValue("gid", xid.ToString());
        return (bool)(await query.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
    }

    /// <inheritdoc />
    /// <remarks>
    /// When no transaction is prepared under the gid, the transaction id in <paramref name="recoveryData"/> (the Yes
    /// vote's) tells what became of it: committed (the expected repeat after a lost acknowledgement), rolled back (by
    /// someone else: a heuristic outcome), or <see cref="BranchOutcome.Unknown"/> when PostgreSQL no longer knows.
    /// Without a transaction id (a decision logged by an older version), a marker row that version wrote says
    /// committed; otherwise the answer is <see cref="BranchOutcome.Unknown"/>, never a guess.
    /// </remarks>
    public async ValueTask<BranchOutcome> CommitAsync(Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken)
    {
        var gid = PostgresGid.Literal(xid);
        await EnsureReadyAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await ExecuteAsync("COMMIT PREPARED " + gid, cancellationToken).ConfigureAwait(false);
            return BranchOutcome.Committed;
        }
        catch (PostgresException ex) when (ex.SqlState == UndefinedObject)
        {
            return await FinishedAlreadyAsync(xid, "COMMIT", recoveryData, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    /// <remarks>
    /// When no transaction is prepared under the gid, the transaction id in <paramref name="recoveryData"/> tells
    /// whether someone committed it (reported as <see cref="BranchOutcome.Committed"/>: a heuristic outcome). Without
    /// one, the branch is presumed rolled back, as the protocol presumes abort.
    /// </remarks>
    public async ValueTask<BranchOutcome> RollbackAsync(Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken)
    {
        var gid = PostgresGid.Literal(xid);
        await EnsureReadyAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await ExecuteAsync("ROLLBACK PREPARED " + gid, cancellationToken).ConfigureAwait(false);
            return BranchOutcome.RolledBack;
        }
        catch (PostgresException ex) when (ex.SqlState == UndefinedObject)
        {
            return await FinishedAlreadyAsync(xid, "ROLLBACK", recoveryData, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Lists the TwoPC branches prepared in this database (<c>pg_prepared_xacts</c>, filtered to the current
    /// database and TwoPC's XID format; other gids are not ours) and measures the oldest prepared transaction.
    /// </summary>
    public async ValueTask<IReadOnlyCollection<InDoubtBranch>> RecoverAsync(CancellationToken cancellationToken)
    {
        await EnsureReadyAsync(cancellationToken).ConfigureAwait(false);
        var branches = new List<InDoubtBranch>();
        TimeSpan? oldestAge = null;
        var connection = await DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var connectionScope = connection.ConfigureAwait(false);

        // One scan serves both the in-doubt list (TwoPC's format only) and the age of the oldest prepared
        // transaction of any kind (all of them hold locks and hold back VACUUM).
        // Each branch's transaction id is remembered too (pg_prepared_xacts has the 32-bit xid; the next xid8 gives its
        // epoch), so a repeated commit after a restart that brings no recovery data can still be answered exactly.
        // The next xid8 is read once per scan (an uncorrelated scalar subquery: an InitPlan, evaluated once), not once per
        // row: every snapshot walks every prepared transaction, so per row the scan was quadratic (10,000 rows x 20,000
        // prepared transactions: seconds, and far worse on a loaded server).
        var scan = new NpgsqlCommand(
            "SELECT gid, prepared, now() - prepared, transaction::text, (SELECT pg_snapshot_xmax(pg_current_snapshot()))::text FROM pg_prepared_xacts WHERE database = current_database() ORDER BY prepared", connection);
        await using var scanScope = scan.ConfigureAwait(false);
        var reader = await scan.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await using (reader.ConfigureAwait(false))
        {
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                oldestAge ??= reader.GetFieldValue<TimeSpan>(2);
                if (Xid.TryParse(reader.GetString(0), out var xid) && xid.FormatId == Xid.TwoPCFormatId)
                {
                    branches.Add(new InDoubtBranch(xid, reader.GetFieldValue<DateTimeOffset>(1)));
                    RememberPrepared(xid, WithEpoch(ParseId(reader.GetString(3)), ParseId(reader.GetString(4))));
                }
            }
        }

        OldestPreparedAge = oldestAge;
        Volatile.Write(ref _oldestPreparedSeconds, oldestAge?.TotalSeconds ?? 0);
        return branches;
    }

    /// <summary>Forgets a heuristically completed branch: what this process remembers of it, and the marker row an older version may have left.</summary>
    public async ValueTask ForgetAsync(Xid xid, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(xid);
        _prepared.TryRemove(xid.ToString(), out _);
        await EnsureReadyAsync(cancellationToken).ConfigureAwait(false);
        var connection = await DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var connectionScope = connection.ConfigureAwait(false);
        if (await LegacyMarkersExistAsync(connection, cancellationToken).ConfigureAwait(false))
        {
            var command = new NpgsqlCommand($"DELETE FROM {_legacyMarkers} WHERE gid = @gid", connection);
            await using var commandScope = command.ConfigureAwait(false);
            command.Parameters.AddWithValue("gid", xid.ToString());
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public void Dispose() => _meter.Dispose();

    /// <inheritdoc />
    public override string ToString() => Name;

    /// <summary>Finishes a prepared transaction that wrote nothing (a read-only branch): commit or rollback are the same.</summary>
    internal async Task FinishEmptyPreparedAsync(Xid xid, CancellationToken cancellationToken)
    {
        try
        {
            await ExecuteAsync("COMMIT PREPARED " + PostgresGid.Literal(xid), cancellationToken).ConfigureAwait(false);
        }
        catch (PostgresException ex) when (ex.SqlState == UndefinedObject)
        {
            // Already finished: it held nothing.
        }
    }

    /// <summary>The No vote's reason when PREPARE TRANSACTION finds the gid in use (42710).</summary>
    internal string GidInUseReason(Xid xid, PostgresException ex)
    {
        var node = xid.TryGetGlobalTransactionId()?.Node.ToString() ?? "?";
        _logger.GidInUse(xid, Name, node);
        return $"{ex.SqlState}: {ex.MessageText}. A transaction is already prepared under this gid, and only coordinator node '{node}' hands out its transaction ids: " +
            $"another coordinator may be using the same node id '{node}' with a different log. Node ids must be unique; give each coordinator its own.";
    }

    private async Task ExecuteAsync(string sql, CancellationToken cancellationToken)
    {
        var connection = await DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var connectionScope = connection.ConfigureAwait(false);
        var command = new NpgsqlCommand(sql, connection);
        await using var commandScope = command.ConfigureAwait(false);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    [GeneratedRegex("^[a-z_][a-z0-9_]{0,62}$")]
    private static partial Regex SchemaName();
}
