// TwoPC write-ahead log: on-disk format, version 1
// =================================================
//
// A log is a directory holding a LOCK file (held exclusively while a coordinator has the log open)
// and segment files wal-{number:D16}.seg numbered upwards from 1. Only the highest-numbered segment
// is appended to. All integers are little-endian.
//
// Segment header, 32 bytes:
//    0  u32  magic "TPCW"
//    4  u16  format version (1)
//    6  u16  flags (0)
//    8  u64  segment number, equal to the number in the file name
//   16  u64  reserved (0)
//   24  u64  XxHash3-64 of bytes 0..23
//
// Record frame, 20 bytes + payload, packed one after another from offset 32:
//    0  u32  payload length L (at most 256 MiB)
//    4  u8   record type (0 is invalid)
//    5  3 B  reserved (0)
//    8  u64  checksum: XxHash3-64 of the payload seeded with bytes 0..7 read as an i64, so it
//            covers the length, the type and the payload
//   16  L B  payload
// 16+L  u32  L again: a frame whose suffix disagrees with its prefix was torn mid-write
//
// Record types and payloads (TransactionRecordCodec). str = u32 byte count + UTF-8; bytes = u32
// count + bytes; time = i64 Unix milliseconds; ids in canonical text form, read back with
// GlobalTransactionId.Parse / Xid.Parse. A record that does not decode exactly (bad id, bad enum,
// trailing bytes) is corruption even though its checksum matched.
//    1 Epoch           u64 epoch
//    2 CommitDecision  str gtrid, time decidedAt, u32 n, n x (str resourceManager, str xid, bytes recoveryData)
//    3 Heuristic       str gtrid, time recordedAt, u8 OutcomeKind, str reason,
//                      u32 n, n x (str resourceManager, str xid, u8 outcome: 0 = null, else 1 + BranchOutcome)
//    4 End             str gtrid: closes the transaction's decision and forgets its heuristic
//
// Writing (group commit): appenders encode their frame straight into the open batch buffer under a
// short lock. One flusher thread swaps the buffer out, writes it with a single positional write,
// fsyncs, and completes the one TaskCompletionSource every appender of that batch awaits. Appends
// arriving meanwhile form the next batch. END records never wait; a batch holding only ENDs is
// written without fsync (the next fsync covers it; losing it only repeats an idempotent commit).
//
// Recovery: segments are read in number order; every header and frame is verified.
//  - Last segment, bad frame (runs past EOF, bad checksum, bad suffix) and no frame that verifies at
//    any later byte offset: a torn tail from a crash mid-write. It is truncated, fsynced and reported.
//  - A bad frame followed by any frame that verifies, a bad frame in any segment but the last, or a
//    bad header of any segment but the last: corruption. Opening fails naming the file and offset;
//    damaged records are never skipped.
//  - Last segment with a torn header (a crash while creating it) and no valid frame: deleted.
//  Replay: Epoch -> max epoch; CommitDecision -> pending; Heuristic -> kept; End -> drops both.
//  Reading a record twice (an older copy and a checkpoint copy) gives the same state.
//
// Checkpoint / compaction: the transaction layer keeps the live set in memory (decisions without END,
// heuristics not forgotten, the current epoch). When the current segment has reached SegmentSize and
// at least half of it is not checkpoint copies (so a large live set cannot cause endless rollover),
// the flusher, before writing the next batch, creates segment n+1 with a header and a copy of every
// live record, fsyncs it and the directory, and only then deletes every older segment (lowest first)
// and fsyncs the directory again. The batch follows the copies. A crash at any point leaves either
// all old segments or the complete new one.
//
// Epochs: every open durably appends Epoch(max seen + 1, or 1 for an empty log) before returning, so
// epochs strictly increase across restarts even when a run logged nothing else.

using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;
using TwoPC.Diagnostics;
using TwoPC.Durability;

namespace TwoPC.Wal;

/// <summary>Receives one verified record during recovery.</summary>
internal delegate void WalRecordHandler(byte recordType, ReadOnlySpan<byte> payload);

/// <summary>
/// A segmented, checksummed, group-committing write-ahead log of typed byte records. It knows
/// nothing about transactions: the owner decodes records on open and supplies the live records to
/// copy at each checkpoint. Fail-stop: after any I/O error it accepts nothing more.
/// </summary>
internal sealed class WriteAheadLog : IAsyncDisposable
{
    private readonly string _directory;
    private readonly long _segmentSize;
    private readonly IWalFileSystem _fileSystem;
    private readonly ILogger _logger;
    private readonly WalMetrics _metrics;
    private readonly TimeProvider _timeProvider;
    private readonly Action<WalFrameBuffer> _writeLiveRecords;

    // Guards the batch being filled, its waiters and the flags; the flusher waits on it.
    private readonly object _sync = new();
    private WalFrameBuffer _filling = new();
    private WalFrameBuffer _flushing = new();
    private TaskCompletionSource? _fillingWaiters;
    private bool _flusherWaiting;
    private bool _stopping;
    private TransactionLogFailedException? _failure;

    // Owned by the flusher thread once the log is open.
    private readonly WalFrameBuffer _checkpointBuffer = new();
    private readonly List<string> _olderSegments = [];
    private SafeFileHandle? _segment;
    private string _segmentPath = string.Empty;
    private ulong _segmentNumber;
    private long _segmentLength;
    private long _segmentCheckpointLength;

    private readonly TaskCompletionSource _flusherStopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private IDisposable? _directoryLock;
    private Thread? _flusher;
    private int _disposed;

    /// <param name="directory">The log directory (full path).</param>
    /// <param name="segmentSize">The size at which a segment is rolled over.</param>
    /// <param name="fileSystem">The file layer.</param>
    /// <param name="logger">Where to log.</param>
    /// <param name="metrics">WAL instruments.</param>
    /// <param name="timeProvider">Clock for flush durations.</param>
    /// <param name="writeLiveRecords">Writes a copy of every live record; called on the flusher thread at each checkpoint.</param>
    public WriteAheadLog(string directory, long segmentSize, IWalFileSystem fileSystem, ILogger logger, WalMetrics metrics, TimeProvider timeProvider, Action<WalFrameBuffer> writeLiveRecords)
    {
        _directory = directory;
        _segmentSize = segmentSize;
        _fileSystem = fileSystem;
        _logger = logger;
        _metrics = metrics;
        _timeProvider = timeProvider;
        _writeLiveRecords = writeLiveRecords;
    }

    /// <summary>The error that stopped the log, or <see langword="null"/>.</summary>
    public TransactionLogFailedException? Failure => Volatile.Read(ref _failure);

    /// <summary>Number of segment files the log currently has.</summary>
    public int SegmentCount => _olderSegments.Count + (_segment is null ? 0 : 1);

    /// <summary>
    /// Takes the directory lock, verifies and replays every record through <paramref name="onRecord"/>,
    /// repairs a torn tail, and starts the flusher. Returns what was repaired.
    /// </summary>
    /// <exception cref="TransactionLogLockedException">Another owner holds the directory.</exception>
    /// <exception cref="TransactionLogCorruptedException">A damaged record that is not a torn tail.</exception>
    public IReadOnlyList<string> Open(WalRecordHandler onRecord, CancellationToken cancellationToken)
    {
        _fileSystem.CreateDirectory(_directory);
        _directoryLock = _fileSystem.TryLockDirectory(_directory);
        if (_directoryLock is null)
        {
            _logger.LockConflict(_directory);
            throw new TransactionLogLockedException(_directory);
        }

        var warnings = new List<string>();
        try
        {
            var segments = ListSegments();
            for (var i = 0; i < segments.Count; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var (number, path) = segments[i];
                var isLast = i == segments.Count - 1;
                if (ReadSegment(path, number, isLast, onRecord, warnings) && !isLast)
                {
                    _olderSegments.Add(path);
                }
            }

            if (_segment is null)
            {
                // Empty directory, or the last segment's creation was torn and it was removed.
                CreateEmptySegment(segments.Count == 0 ? 1 : segments[^1].Number + 1);
            }

            _flusher = new Thread(RunFlusher) { IsBackground = true, Name = "TwoPC WAL flusher" };
            _flusher.UnsafeStart();
            return warnings;
        }
        catch
        {
            _segment?.Dispose();
            _segment = null;
            _directoryLock.Dispose();
            _directoryLock = null;
            throw;
        }
    }

    /// <summary>Appends a record and completes once it is durable.</summary>
    /// <exception cref="TransactionLogFailedException">The log has failed (the returned task faults).</exception>
    public ValueTask AppendAsync<TState>(byte recordType, TState state, int maxPayloadLength, WalPayloadEncoder<TState> encoder)
    {
        Task durable;
        lock (_sync)
        {
            if (_failure is not null)
            {
                return ValueTask.FromException(NewFailedException());
            }

            ObjectDisposedException.ThrowIf(_stopping, this);
            _filling.WriteFrame(recordType, state, maxPayloadLength, encoder);
            durable = (_fillingWaiters ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
            if (_flusherWaiting)
            {
                Monitor.Pulse(_sync);
            }
        }

        return new ValueTask(durable);
    }

    /// <summary>Appends a record without waiting for it to be durable.</summary>
    /// <exception cref="TransactionLogFailedException">The log has failed.</exception>
    public void Append<TState>(byte recordType, TState state, int maxPayloadLength, WalPayloadEncoder<TState> encoder)
    {
        lock (_sync)
        {
            if (_failure is not null)
            {
                throw NewFailedException();
            }

            ObjectDisposedException.ThrowIf(_stopping, this);
            _filling.WriteFrame(recordType, state, maxPayloadLength, encoder);
            if (_flusherWaiting)
            {
                Monitor.Pulse(_sync);
            }
        }
    }

    /// <summary>Flushes what is queued, stops the flusher, closes the files and releases the lock.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        lock (_sync)
        {
            _stopping = true;
            Monitor.Pulse(_sync);
        }

        if (_flusher is not null)
        {
            await _flusherStopped.Task.ConfigureAwait(false);
        }

        _segment?.Dispose();
        _segment = null;
        _filling.Dispose();
        _flushing.Dispose();
        _checkpointBuffer.Dispose();
        _directoryLock?.Dispose();
        _directoryLock = null;
    }

    private TransactionLogFailedException NewFailedException() =>
        new($"The transaction log at '{_directory}' has failed and accepts no more records: {_failure!.InnerException?.Message}", _failure.InnerException ?? _failure);

    private void RunFlusher()
    {
        try
        {
            while (true)
            {
                WalFrameBuffer batch;
                TaskCompletionSource? waiters;
                bool draining;
                lock (_sync)
                {
                    while (_filling.Length == 0 && !_stopping)
                    {
                        _flusherWaiting = true;
                        Monitor.Wait(_sync);
                        _flusherWaiting = false;
                    }

                    if (_filling.Length == 0)
                    {
                        return;
                    }

                    // Appends arriving from now on fill the other buffer and form the next batch.
                    batch = _filling;
                    _filling = _flushing;
                    _flushing = batch;
                    waiters = _fillingWaiters;
                    _fillingWaiters = null;
                    draining = _stopping;
                }

                try
                {
                    Flush(batch, mustSync: waiters is not null || draining);
                }
                catch (Exception ex)
                {
                    Fail(ex, waiters);
                    return;
                }

                batch.Reset();
                waiters?.TrySetResult();
            }
        }
        finally
        {
            _flusherStopped.TrySetResult();
        }
    }

    private void Flush(WalFrameBuffer batch, bool mustSync)
    {
        var started = _timeProvider.GetTimestamp();
        if (_segmentLength >= _segmentSize && (_segmentLength - _segmentCheckpointLength) * 2 >= _segmentLength)
        {
            Checkpoint();
        }

        var segment = _segment!;
        _fileSystem.Write(segment, batch.WrittenSpan, _segmentLength);
        if (mustSync)
        {
            _fileSystem.FlushToDisk(segment);
        }

        _segmentLength += batch.Length;
        _metrics.BatchRecords.Record(batch.RecordCount);
        _metrics.BytesWritten.Add(batch.Length);
        _metrics.FlushDuration.Record(_timeProvider.GetElapsedTime(started).TotalSeconds);
    }

    /// <summary>Starts segment n+1 with copies of the live records, then deletes the older segments.</summary>
    private void Checkpoint()
    {
        var number = _segmentNumber + 1;
        var path = Path.Combine(_directory, WalFormat.SegmentFileName(number));
        _checkpointBuffer.Reset();
        _checkpointBuffer.WriteSegmentHeader(number);
        _writeLiveRecords(_checkpointBuffer);

        var handle = _fileSystem.OpenFile(path, FileMode.CreateNew);
        try
        {
            _fileSystem.Write(handle, _checkpointBuffer.WrittenSpan, 0);
            _fileSystem.FlushToDisk(handle);
            _fileSystem.FlushDirectory(_directory);
        }
        catch
        {
            handle.Dispose();
            throw;
        }

        // The copies are durable: everything before this segment is now redundant.
        _olderSegments.Add(_segmentPath);
        _segment!.Dispose();
        _segment = handle;
        _segmentPath = path;
        _segmentNumber = number;
        _segmentLength = _checkpointBuffer.Length;
        _segmentCheckpointLength = _checkpointBuffer.Length;
        _logger.CheckpointWritten(path, _checkpointBuffer.RecordCount, _checkpointBuffer.Length);
        _metrics.BytesWritten.Add(_checkpointBuffer.Length);
        _checkpointBuffer.Reset();

        var deleted = 0;
        foreach (var old in _olderSegments)
        {
            _fileSystem.DeleteFile(old);
            deleted++;
        }

        _olderSegments.Clear();
        _fileSystem.FlushDirectory(_directory);
        _metrics.SegmentsDeleted.Add(deleted);
        _logger.SegmentsDeleted(deleted, _directory, number);
    }

    private void Fail(Exception error, TaskCompletionSource? waiters)
    {
        var failure = new TransactionLogFailedException(
            $"The transaction log at '{_directory}' failed writing to disk and stopped (fail-stop): {error.Message}", error);
        TaskCompletionSource? later;
        lock (_sync)
        {
            _failure = failure;
            later = _fillingWaiters;
            _fillingWaiters = null;
            _filling.Reset();
        }

        _logger.Failed(_directory, error);
        waiters?.TrySetException(failure);
        later?.TrySetException(failure);
    }

    private List<(ulong Number, string Path)> ListSegments()
    {
        var segments = new List<(ulong Number, string Path)>();
        foreach (var path in _fileSystem.ListFiles(_directory, WalFormat.SegmentSearchPattern))
        {
            if (WalFormat.TryParseSegmentFileName(Path.GetFileName(path), out var number))
            {
                segments.Add((number, path));
            }
        }

        segments.Sort((a, b) => a.Number.CompareTo(b.Number));
        return segments;
    }

    private void CreateEmptySegment(ulong number)
    {
        var path = Path.Combine(_directory, WalFormat.SegmentFileName(number));
        Span<byte> header = stackalloc byte[WalFormat.SegmentHeaderSize];
        WalFormat.WriteSegmentHeader(header, number);
        var handle = _fileSystem.OpenFile(path, FileMode.CreateNew);
        try
        {
            _fileSystem.Write(handle, header, 0);
            _fileSystem.FlushToDisk(handle);
            _fileSystem.FlushDirectory(_directory);
        }
        catch
        {
            handle.Dispose();
            throw;
        }

        _segment = handle;
        _segmentPath = path;
        _segmentNumber = number;
        _segmentLength = WalFormat.SegmentHeaderSize;
        _segmentCheckpointLength = WalFormat.SegmentHeaderSize;
    }

    /// <summary>Verifies and replays one segment; the last one stays open for appending. Returns false if it was removed.</summary>
    private bool ReadSegment(string path, ulong number, bool isLast, WalRecordHandler onRecord, List<string> warnings)
    {
        var handle = _fileSystem.OpenFile(path, FileMode.Open);
        var keepOpen = false;
        try
        {
            var data = ReadAll(handle, path);
            if (!WalFormat.TryReadSegmentHeader(data, out var headerNumber, out var problem))
            {
                if (!isLast)
                {
                    throw Corrupt(path, 0, problem);
                }

                var valid = FindValidFrame(data, 0);
                if (valid >= 0)
                {
                    throw Corrupt(path, 0, $"{problem}, yet a valid record follows at offset {valid}");
                }

                // A crash while this segment was being created: it holds nothing acknowledged.
                handle.Dispose();
                _fileSystem.DeleteFile(path);
                _fileSystem.FlushDirectory(_directory);
                var warning = $"Removed {path} ({data.Length} bytes): {problem}; it was being created when the process stopped.";
                warnings.Add(warning);
                _logger.TornSegmentRemoved(path, data.Length, problem);
                return false;
            }

            if (headerNumber != number)
            {
                throw Corrupt(path, 8, $"the header says segment {headerNumber}");
            }

            var end = WalSegmentReader.ReadFrames(data, (frameOffset, recordType, payload) =>
            {
                try
                {
                    onRecord(recordType, payload);
                }
                catch (Exception ex) when (ex is FormatException or InvalidDataException or ArgumentException or OverflowException)
                {
                    throw Corrupt(path, frameOffset, $"a record of type {recordType} has a valid checksum but does not decode: {ex.Message}", ex);
                }
            });

            var offset = end.Offset;
            if (end.Problem is { } frameProblem)
            {
                if (!isLast)
                {
                    throw Corrupt(path, offset, $"{frameProblem} (in a segment that is not the last, so not a torn write)");
                }

                var valid = FindValidFrame(data, offset + 1);
                if (valid >= 0)
                {
                    throw Corrupt(path, offset, $"{frameProblem}, and a valid record follows at offset {valid}");
                }

                var dropped = data.Length - offset;
                _fileSystem.SetLength(handle, offset);
                _fileSystem.FlushToDisk(handle);
                warnings.Add($"Truncated {dropped} bytes of torn data at offset {offset} of {path} ({frameProblem}).");
                _logger.TornTailTruncated(dropped, path, offset, frameProblem);
            }

            if (isLast)
            {
                _segment = handle;
                _segmentPath = path;
                _segmentNumber = number;
                _segmentLength = Math.Min(offset, data.Length);
                _segmentCheckpointLength = WalFormat.SegmentHeaderSize;
                keepOpen = true;
            }

            return true;
        }
        finally
        {
            if (!keepOpen)
            {
                handle.Dispose();
            }
        }
    }

    private byte[] ReadAll(SafeFileHandle handle, string path)
    {
        var length = _fileSystem.GetLength(handle);
        if (length > Array.MaxLength)
        {
            throw Corrupt(path, 0, $"the segment is {length} bytes, larger than any segment this log writes");
        }

        var data = new byte[length];
        var read = 0;
        while (read < data.Length)
        {
            var n = _fileSystem.Read(handle, data.AsSpan(read), read);
            if (n == 0)
            {
                throw new IOException($"'{path}' shrank while it was being read.");
            }

            read += n;
        }

        return data;
    }

    private static long FindValidFrame(byte[] data, int start) => WalSegmentReader.FindValidFrame(data, start);

    private static TransactionLogCorruptedException Corrupt(string path, long offset, string problem, Exception? inner = null)
    {
        var message = $"The transaction log is corrupt at offset {offset} of '{path}': {problem}. Recovery never skips damaged records; restore or investigate the file before starting the coordinator.";
        return inner is null ? new TransactionLogCorruptedException(message) : new TransactionLogCorruptedException(message, inner);
    }
}
