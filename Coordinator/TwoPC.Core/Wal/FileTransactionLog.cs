using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using TwoPC.Diagnostics;
using TwoPC.Durability;
using TwoPC.Transactions;

namespace TwoPC.Wal;

/// <summary>
/// The coordinator's transaction log on one node's local disk: a segmented write-ahead log with
/// group commit, checksummed records, torn-write repair, checkpointing that keeps disk use bounded,
/// and an exclusive directory lock. The on-disk format is described at the top of <c>WriteAheadLog.cs</c>.
/// </summary>
/// <remarks>
/// Concurrent <see cref="LogCommitDecisionAsync"/> calls share one write and one fsync per batch. The log
/// keeps every decision without an END (and every heuristic not forgotten) in memory, by reference, to
/// copy it forward at checkpoints: a logged decision's recovery data must not change afterwards.
/// </remarks>
public sealed class FileTransactionLog : ITransactionLog
{
    private readonly string _directory;
    private readonly long _segmentSize;
    private readonly IWalFileSystem _fileSystem;
    private readonly ILogger _logger;
    private readonly Meter _meter;
    private readonly bool _ownsMeter;
    private readonly WalMetrics _metrics;
    private readonly TimeProvider _timeProvider;

    // The live set, copied into each new segment. Updated before a record is appended (and an END's
    // target removed before the END is appended) so a checkpoint never misses a record it must carry.
    private readonly object _liveSync = new();
    private readonly Dictionary<GlobalTransactionId, CommitDecision> _liveDecisions = [];
    private readonly Dictionary<GlobalTransactionId, HeuristicRecord> _liveHeuristics = [];
    private ulong _epoch;

    private WriteAheadLog? _wal;
    private int _state; // 0 new, 1 opening or open, 2 disposed

    /// <summary>Creates the log; nothing touches the disk until <see cref="OpenAsync(NodeId, CancellationToken)"/>.</summary>
    /// <param name="options">Where the log lives and how large its segments grow.</param>
    /// <param name="logger">Logs opening, repairs, checkpoints and failures.</param>
    /// <param name="meterFactory">Creates the <c>TwoPC</c> meter for the WAL metrics; a private meter when <see langword="null"/>.</param>
    /// <param name="timeProvider">Clock for flush durations; <see cref="TimeProvider.System"/> when <see langword="null"/>.</param>
    public FileTransactionLog(FileTransactionLogOptions options, ILogger<FileTransactionLog>? logger = null, IMeterFactory? meterFactory = null, TimeProvider? timeProvider = null)
        : this(options, PhysicalWalFileSystem.Instance, logger, meterFactory, timeProvider)
    {
    }

    internal FileTransactionLog(FileTransactionLogOptions options, IWalFileSystem fileSystem, ILogger<FileTransactionLog>? logger = null, IMeterFactory? meterFactory = null, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(fileSystem);
        options.Validate();
        _directory = Path.GetFullPath(options.Directory);
        _segmentSize = options.SegmentSize;
        _fileSystem = fileSystem;
        _logger = logger ?? (ILogger)NullLogger.Instance;
        _meter = TwoPCTelemetry.CreateMeter(meterFactory);
        _ownsMeter = meterFactory is null;
        _metrics = new WalMetrics(_meter);
        _timeProvider = timeProvider ?? TimeProvider.System;
    }

    /// <summary>The full path of the log directory.</summary>
    public string Directory => _directory;

    /// <inheritdoc />
    public Exception? Failure => _wal?.Failure;

    /// <summary>
    /// Opens the log without a node id: the node recorded in the log (if any) is neither checked nor set.
    /// A coordinator opens it with <see cref="OpenAsync(NodeId, CancellationToken)"/>.
    /// </summary>
    /// <exception cref="TransactionLogLockedException">Another coordinator has the directory open.</exception>
    /// <exception cref="TransactionLogCorruptedException">A damaged record that is not a torn tail, or a log that is not whole.</exception>
    public ValueTask<LogRecoveryState> OpenAsync(CancellationToken cancellationToken) => OpenAsync(null, cancellationToken);

    /// <summary>
    /// Opens the log for the coordinator node <paramref name="node"/>: a log written under another node id is
    /// refused, and a new log (or one opened only without a node id so far) records this one.
    /// </summary>
    /// <exception cref="TransactionLogLockedException">Another coordinator has the directory open.</exception>
    /// <exception cref="TransactionLogNodeMismatchException">The log was written by another coordinator node.</exception>
    /// <exception cref="TransactionLogCorruptedException">A damaged record that is not a torn tail, or a log that is not whole.</exception>
    public ValueTask<LogRecoveryState> OpenAsync(NodeId node, CancellationToken cancellationToken) => OpenAsync(node.Value, cancellationToken);

    private async ValueTask<LogRecoveryState> OpenAsync(string? node, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (Interlocked.CompareExchange(ref _state, 1, 0) != 0)
        {
            ObjectDisposedException.ThrowIf(_state == 2, this);
            throw new InvalidOperationException($"The transaction log at '{_directory}' is already open.");
        }

        var replay = new Replay();
        var wal = new WriteAheadLog(_directory, _segmentSize, _fileSystem, _logger, _metrics, _timeProvider, WriteLiveRecords);
        try
        {
            var warnings = wal.Open(node, replay.Apply, cancellationToken);
            if (replay.MaxEpoch == ulong.MaxValue)
            {
                throw new TransactionLogCorruptedException($"The transaction log at '{_directory}' has reached the largest epoch.");
            }

            lock (_liveSync)
            {
                foreach (var (id, decision) in replay.Decisions)
                {
                    _liveDecisions[id] = decision;
                }

                foreach (var (id, heuristic) in replay.Heuristics)
                {
                    _liveHeuristics[id] = heuristic;
                }

                _epoch = replay.MaxEpoch + 1;
            }

            _wal = wal;
            await wal.AppendAsync((byte)TransactionRecordType.Epoch, _epoch, TransactionRecordCodec.EpochLength, TransactionRecordCodec.EpochEncoder).ConfigureAwait(false);

            var pending = replay.Decisions.Values.OrderBy(d => d.TransactionId, IdComparer.Instance).ToArray();
            var heuristics = replay.Heuristics.Values.OrderBy(h => h.TransactionId, IdComparer.Instance).ToArray();
            _logger.Opened(_directory, _epoch, pending.Length, heuristics.Length, wal.SegmentCount, warnings.Count);
            return new LogRecoveryState(_epoch, pending, heuristics, warnings);
        }
        catch
        {
            _wal = null;
            await wal.DisposeAsync().ConfigureAwait(false);
            Volatile.Write(ref _state, 0);
            throw;
        }
    }

    /// <inheritdoc />
    public ValueTask LogCommitDecisionAsync(CommitDecision decision)
    {
        ArgumentNullException.ThrowIfNull(decision);
        var wal = OpenLog();
        var maxLength = TransactionRecordCodec.MaxCommitDecisionLength(decision);
        lock (_liveSync)
        {
            _liveDecisions[decision.TransactionId] = decision;
        }

        return wal.AppendAsync((byte)TransactionRecordType.CommitDecision, decision, maxLength, TransactionRecordCodec.CommitDecisionEncoder);
    }

    /// <inheritdoc />
    public ValueTask LogHeuristicAsync(HeuristicRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        var wal = OpenLog();
        var maxLength = TransactionRecordCodec.MaxHeuristicLength(record);
        lock (_liveSync)
        {
            _liveHeuristics[record.TransactionId] = record;
        }

        return wal.AppendAsync((byte)TransactionRecordType.Heuristic, record, maxLength, TransactionRecordCodec.HeuristicEncoder);
    }

    /// <inheritdoc />
    /// <exception cref="TransactionLogFailedException">The log has failed.</exception>
    public void LogEnd(GlobalTransactionId transactionId)
    {
        var wal = OpenLog();
        if (wal.Failure is null)
        {
            lock (_liveSync)
            {
                _liveDecisions.Remove(transactionId);
                _liveHeuristics.Remove(transactionId);
            }
        }

        wal.Append((byte)TransactionRecordType.End, transactionId, TransactionRecordCodec.MaxEndLength, TransactionRecordCodec.EndEncoder);
    }

    /// <summary>Flushes every queued record, then closes the segment files and releases the directory lock.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _state, 2) == 2)
        {
            return;
        }

        if (_wal is { } wal)
        {
            await wal.DisposeAsync().ConfigureAwait(false);
            _logger.Closed(_directory);
        }

        if (_ownsMeter)
        {
            _meter.Dispose();
        }
    }

    private WriteAheadLog OpenLog()
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _state) == 2, this);
        return _wal ?? throw new InvalidOperationException($"The transaction log at '{_directory}' is not open; call {nameof(OpenAsync)} first.");
    }

    // Runs on the flusher thread at a checkpoint.
    private void WriteLiveRecords(WalFrameBuffer buffer)
    {
        lock (_liveSync)
        {
            buffer.WriteFrame((byte)TransactionRecordType.Epoch, _epoch, TransactionRecordCodec.EpochLength, TransactionRecordCodec.EpochEncoder);
            foreach (var decision in _liveDecisions.Values)
            {
                buffer.WriteFrame((byte)TransactionRecordType.CommitDecision, decision, TransactionRecordCodec.MaxCommitDecisionLength(decision), TransactionRecordCodec.CommitDecisionEncoder);
            }

            foreach (var heuristic in _liveHeuristics.Values)
            {
                buffer.WriteFrame((byte)TransactionRecordType.Heuristic, heuristic, TransactionRecordCodec.MaxHeuristicLength(heuristic), TransactionRecordCodec.HeuristicEncoder);
            }
        }
    }

    /// <summary>The state rebuilt from the records, in log order.</summary>
    internal sealed class Replay
    {
        public Dictionary<GlobalTransactionId, CommitDecision> Decisions { get; } = [];

        public Dictionary<GlobalTransactionId, HeuristicRecord> Heuristics { get; } = [];

        public ulong MaxEpoch { get; private set; }

        public void Apply(byte recordType, ReadOnlySpan<byte> payload)
        {
            switch ((TransactionRecordType)recordType)
            {
                case TransactionRecordType.Epoch:
                    MaxEpoch = Math.Max(MaxEpoch, TransactionRecordCodec.DecodeEpoch(payload));
                    break;
                case TransactionRecordType.CommitDecision:
                    var decision = TransactionRecordCodec.DecodeCommitDecision(payload);
                    Decisions[decision.TransactionId] = decision;
                    break;
                case TransactionRecordType.Heuristic:
                    var heuristic = TransactionRecordCodec.DecodeHeuristic(payload);
                    Heuristics[heuristic.TransactionId] = heuristic;
                    break;
                case TransactionRecordType.End:
                    var id = TransactionRecordCodec.DecodeEnd(payload);
                    Decisions.Remove(id);
                    Heuristics.Remove(id);
                    break;
                default:
                    throw new InvalidDataException($"unknown record type {recordType}");
            }
        }
    }

    internal sealed class IdComparer : IComparer<GlobalTransactionId>
    {
        public static IdComparer Instance { get; } = new();

        public int Compare(GlobalTransactionId x, GlobalTransactionId y)
        {
            var byNode = string.CompareOrdinal(x.Node.Value, y.Node.Value);
            return byNode != 0 ? byNode : x.Epoch != y.Epoch ? x.Epoch.CompareTo(y.Epoch) : x.Sequence.CompareTo(y.Sequence);
        }
    }
}
