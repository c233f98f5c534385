// Fencing, and why a decision is never both refused and lost
// ==========================================================
//
// Every node holds a row nodes(node_id, epoch, expires_at, adopted_by). Its epoch is the fencing token: the value the
// node read when it opened the log. Each group-commit batch of decisions and heuristics is ONE statement (one server
// commit):
//
//   WITH l AS (SELECT 1 FROM nodes WHERE node_id = $node AND epoch = $epoch FOR SHARE)
//   INSERT INTO decisions ... SELECT ... FROM l, unnest(...)            -- and the same for heuristics
//
// so rows are inserted only if the node's row still carries the writer's epoch, and the FOR SHARE lock keeps that row
// from changing until the batch commits. A takeover is `UPDATE nodes SET epoch = epoch + 1, adopted_by = $taker WHERE
// node_id = $node AND expires_at < now() ...`, committed BEFORE the taker reads the node's decisions. The UPDATE needs a
// row lock that conflicts with FOR SHARE, so under READ COMMITTED there are only two orders:
//  - the batch locked the row first: the UPDATE waits until the batch committed; the taker's later read (a new
//    snapshot, taken after the UPDATE committed) sees every row of the batch, and re-drives it;
//  - the UPDATE locked the row first: the batch's FOR SHARE waits until the takeover committed, then re-checks its
//    WHERE clause against the new row version, finds another epoch, returns no row, and the INSERT stores nothing.
//    The row count tells the writer it was refused: the log fails with NodeFencedException (fail-stop).
// Either the taker sees the decision or the writer is told it was refused: never both, never neither. A batch whose
// commit outcome is unknown (lost connection) is retried: the decisions already stored are kept, the others are
// inserted again under the same fence. Lease times are the database's now(), never a node's clock.

using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using Polly;
using Polly.Retry;
using Polly.Timeout;
using TwoPC.Diagnostics;
using TwoPC.Transactions;
using TwoPC.Wal;

namespace TwoPC.Durability.PostgreSql;

/// <summary>
/// A transaction log shared by highly available coordinator nodes, in PostgreSQL: commit decisions are group-committed
/// (one round trip and one server commit per batch), each node holds a lease on the database clock, and every write is
/// fenced by the node's epoch, so a node paused past its lease can never log a decision after another node took it over.
/// </summary>
/// <remarks>
/// Fail-stop like the file log: after a fenced write or a failure that retries could not overcome (the database
/// unreachable for <see cref="PostgreSqlTransactionLogOptions.RetryTimeout"/>), <see cref="Failure"/> is set (a
/// <see cref="NodeFencedException"/> when fenced), the waiting writers fail with it, and every later call throws
/// <see cref="TransactionLogFailedException"/> with it as the inner exception. A lost connection alone is not a failure:
/// the log reconnects and finishes the batch.
/// </remarks>
public sealed partial class PostgreSqlTransactionLog : ISharedTransactionLog
{
    private readonly NpgsqlDataSource _dataSource;
    private readonly bool _ownsDataSource;
    private readonly string _schema;
    private readonly Statements _sql;
    private readonly TimeSpan _leaseDuration;
    private readonly TimeSpan _renewInterval;
    private readonly TimeSpan _openTimeout;
    private readonly bool _createSchema;
    private readonly ILogger _logger;
    private readonly Meter _meter;
    private readonly bool _ownsMeter;
    private readonly PostgreSqlLogMetrics _metrics;
    private readonly TimeProvider _timeProvider;
    private readonly ResiliencePipeline _retry;
    private readonly CancellationTokenSource _stop = new();

    private NodeId? _node;
    private string _nodeText = string.Empty;
    private ulong _epoch;
    private NodeLease? _lease;
    private Exception? _failure;
    private int _state; // 0 new, 1 opening or open, 2 disposed
    private Task[]? _flushers;
    private Task? _renewal;

    /// <summary>Creates the log; nothing touches the database until <see cref="OpenAsync(NodeId, CancellationToken)"/>.</summary>
    /// <param name="options">The database, the schema and the lease settings.</param>
    /// <param name="loggerFactory">Logs opening, waits, retries, takeovers, fencing and failures.</param>
    /// <param name="meterFactory">Creates the <c>TwoPC</c> meter for the log's metrics; a private meter when <see langword="null"/>.</param>
    /// <param name="timeProvider">Clock for renewal intervals, retry delays and flush durations (lease times are the database's).</param>
    public PostgreSqlTransactionLog(PostgreSqlTransactionLogOptions options, ILoggerFactory? loggerFactory = null, IMeterFactory? meterFactory = null, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _ownsDataSource = options.DataSource is null;
        _dataSource = options.DataSource ?? NpgsqlDataSource.Create(options.ConnectionString!);
        _schema = options.Schema;
        _sql = new Statements(options.Schema);
        _leaseDuration = options.LeaseDuration;
        _renewInterval = options.RenewInterval;
        _openTimeout = options.OpenTimeout;
        _createSchema = options.CreateSchema;
        _logger = loggerFactory?.CreateLogger<PostgreSqlTransactionLog>() ?? (ILogger)NullLogger.Instance;
        _meter = TwoPCTelemetry.CreateMeter(meterFactory);
        _ownsMeter = meterFactory is null;
        _metrics = new PostgreSqlLogMetrics(_meter);
        _timeProvider = timeProvider ?? TimeProvider.System;
        _retry = new ResiliencePipelineBuilder { TimeProvider = _timeProvider }
            .AddTimeout(new TimeoutStrategyOptions { Timeout = options.RetryTimeout })
            .AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = args => ValueTask.FromResult(args.Outcome.Exception is { } e && IsTransient(e)),
                MaxRetryAttempts = int.MaxValue,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = TimeSpan.FromMilliseconds(50),
                MaxDelay = TimeSpan.FromSeconds(1),
                OnRetry = args =>
                {
                    _logger.Retrying(args.Context.OperationKey ?? "operation", args.AttemptNumber + 1, args.RetryDelay, args.Outcome.Exception);
                    return default;
                },
            })
            .Build();
    }

    /// <inheritdoc />
    public Exception? Failure => Volatile.Read(ref _failure);

    /// <inheritdoc />
    public NodeLease? Lease => Volatile.Read(ref _lease);

    /// <summary>The schema of the log's tables.</summary>
    public string Schema => _schema;

    /// <summary>Test hook: while set, the background renewal skips its turns (the lease lapses as in a long pause).</summary>
    internal bool RenewalPaused { get; set; }

    /// <summary>Group-commit batches written so far.</summary>
    internal long BatchCount => Interlocked.Read(ref _batchCount);

    /// <summary>Not supported: a shared log is opened for a node, with <see cref="OpenAsync(NodeId, CancellationToken)"/>.</summary>
    /// <exception cref="NotSupportedException">Always.</exception>
    public ValueTask<LogRecoveryState> OpenAsync(CancellationToken cancellationToken) =>
        throw new NotSupportedException("A shared transaction log is opened for a coordinator node: call OpenAsync(NodeId, CancellationToken).");

    /// <summary>
    /// Opens the log for <paramref name="node"/>: creates the schema (when configured), takes the node's lease under a new
    /// epoch (waiting, up to <see cref="PostgreSqlTransactionLogOptions.OpenTimeout"/>, for a live lease of the same
    /// node id to lapse), starts the renewal, and returns the node's pending decisions and heuristics.
    /// </summary>
    /// <exception cref="TransactionLogLockedException">The node's lease is still held by another process after the open timeout.</exception>
    public async ValueTask<LogRecoveryState> OpenAsync(NodeId node, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (Interlocked.CompareExchange(ref _state, 1, 0) != 0)
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _state) == 2, this);
            throw new InvalidOperationException("The shared transaction log is already open.");
        }

        try
        {
            var nodeText = node.Value;
            if (_createSchema)
            {
                await CreateSchemaAsync(cancellationToken).ConfigureAwait(false);
            }

            var (epoch, expiresAt) = await TakeLeaseAsync(nodeText, cancellationToken).ConfigureAwait(false);
            await RunAsync("release adopted nodes", async (connection, attempt, ct) =>
            {
                await using var command = Command(connection, _sql.ReleaseAdopted, nodeText);
                return await command.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            }, cancellationToken).ConfigureAwait(false);
            var (pending, heuristics) = await ReadNodeAsync(nodeText, cancellationToken).ConfigureAwait(false);

            _node = node;
            _nodeText = nodeText;
            _epoch = epoch;
            Volatile.Write(ref _lease, new NodeLease(node, epoch, expiresAt));
            _flushers = [.. Enumerable.Range(0, Flushers).Select(_ => Task.Run(FlushLoopAsync, CancellationToken.None))];
            _renewal = Task.Run(() => RenewLoopAsync(_stop.Token), CancellationToken.None);
            _logger.Opened(_schema, nodeText, epoch, expiresAt, pending.Count, heuristics.Count);
            return new LogRecoveryState(epoch, pending, heuristics, []);
        }
        catch
        {
            Volatile.Write(ref _state, 0);
            throw;
        }
    }

    /// <inheritdoc />
    public ValueTask LogCommitDecisionAsync(CommitDecision decision)
    {
        ArgumentNullException.ThrowIfNull(decision);
        EnsureOpen();
        var payload = Encode(decision, TransactionRecordCodec.MaxCommitDecisionLength(decision), TransactionRecordCodec.CommitDecisionEncoder);
        return Enqueue(new PendingWrite(decision.TransactionId.ToString(), IsDecision: true, decision.DecidedAt.UtcDateTime, payload));
    }

    /// <inheritdoc />
    public ValueTask LogHeuristicAsync(HeuristicRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        EnsureOpen();
        var payload = Encode(record, TransactionRecordCodec.MaxHeuristicLength(record), TransactionRecordCodec.HeuristicEncoder);
        return Enqueue(new PendingWrite(record.TransactionId.ToString(), IsDecision: false, record.RecordedAt.UtcDateTime, payload));
    }

    /// <inheritdoc />
    /// <exception cref="TransactionLogFailedException">The log has failed.</exception>
    public void LogEnd(GlobalTransactionId transactionId)
    {
        EnsureOpen();
        lock (_sync)
        {
            if (_failure is { } failure)
            {
                throw FailedException(failure);
            }

            ObjectDisposedException.ThrowIf(_stopping, this);
            _ends.Add(transactionId.ToString());
            Wake();
        }
    }

    /// <summary>
    /// Writes every queued record, stops the renewal, hands the lease back (so a restart or a takeover need not wait for
    /// it to lapse) and disposes the data source when the log created it.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _state, 2) == 2)
        {
            return;
        }

        if (_flushers is { } flushers)
        {
            lock (_sync)
            {
                _stopping = true;
                _wake.Release(flushers.Length); // every flusher wakes, writes what is left and stops
            }

            await Task.WhenAll(flushers).ConfigureAwait(false);
            await _stop.CancelAsync().ConfigureAwait(false);
            if (_renewal is { } renewal)
            {
                await renewal.ConfigureAwait(false);
            }

            var released = Failure is null && await TryReleaseLeaseAsync().ConfigureAwait(false);
            _logger.Closed(_nodeText, released);
        }

        _stop.Dispose();
        if (_ownsDataSource)
        {
            await _dataSource.DisposeAsync().ConfigureAwait(false);
        }

        if (_ownsMeter)
        {
            _meter.Dispose();
        }
    }

    private void EnsureOpen()
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _state) == 2, this);
        if (_node is null)
        {
            throw new InvalidOperationException($"The shared transaction log is not open; call {nameof(OpenAsync)} first.");
        }
    }

    private static byte[] Encode<T>(T state, int maxLength, WalPayloadEncoder<T> encoder)
    {
        var buffer = new byte[maxLength];
        var length = encoder(state, buffer);
        return length == buffer.Length ? buffer : buffer.AsSpan(0, length).ToArray();
    }

    private static TransactionLogFailedException FailedException(Exception failure) =>
        new(failure is NodeFencedException
            ? "The shared transaction log refused this node: another node took over its lease (fenced). Restart the coordinator to rejoin."
            : "The shared transaction log has failed and accepts no more records; restart the coordinator to recover.", failure);

    /// <summary>
    /// Stops the log (fail-stop): records <paramref name="error"/> as <see cref="Failure"/> (the first one wins), fails
    /// every queued writer and stops the renewal.
    /// </summary>
    private Exception Fail(Exception error, string what)
    {
        var failure = error is NodeFencedException ? error : new TransactionLogFailedException($"The shared transaction log failed ({what}); restart the coordinator to recover.", error);
        var earlier = Interlocked.CompareExchange(ref _failure, failure, null);
        if (earlier is null)
        {
            if (failure is NodeFencedException)
            {
                _metrics.FencedWrites.Add(1);
                _logger.Fenced(_nodeText, _epoch, what);
            }
            else
            {
                _logger.Failed(_nodeText, failure);
            }

            _stop.Cancel();
        }
        else
        {
            failure = earlier;
        }

        TaskCompletionSource? waiters;
        lock (_sync)
        {
            waiters = _writesDone;
            _writesDone = null;
            _writes.Clear();
            _ends.Clear();
        }

        waiters?.TrySetException(failure);
        return failure;
    }

    internal static bool IsTransient(Exception error) => error switch
    {
        PostgresException postgres => postgres.IsTransient
            || postgres.SqlState.StartsWith("08", StringComparison.Ordinal)  // connection exception
            || postgres.SqlState.StartsWith("57P", StringComparison.Ordinal), // admin/crash shutdown, cannot connect now
        NpgsqlException => true, // connection-level: refused, broken, timed out
        IOException or System.Net.Sockets.SocketException or TimeoutException => true,
        _ => false,
    };

    /// <summary>Runs <paramref name="body"/> on a pooled connection, retrying transient errors for up to the retry timeout.</summary>
    private async ValueTask<T> RunAsync<T>(string operation, Func<NpgsqlConnection, int, CancellationToken, ValueTask<T>> body, CancellationToken cancellationToken)
    {
        var context = ResilienceContextPool.Shared.Get(operation, cancellationToken);
        try
        {
            var attempt = 0;
            return await _retry.ExecuteAsync(
                async (ctx, _) =>
                {
                    attempt++;
                    var connection = await _dataSource.OpenConnectionAsync(ctx.CancellationToken).ConfigureAwait(false);
                    await using (connection.ConfigureAwait(false))
                    {
                        return await body(connection, attempt, ctx.CancellationToken).ConfigureAwait(false);
                    }
                },
                context,
                0).ConfigureAwait(false);
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
        }
    }

    private static NpgsqlCommand Command(NpgsqlConnection connection, string sql, params object[] parameters)
    {
        var command = new NpgsqlCommand(sql, connection);
        foreach (var value in parameters)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = value });
        }

        return command;
    }
}
