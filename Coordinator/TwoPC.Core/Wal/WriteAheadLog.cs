// TwoPC write-ahead log: on-disk format, version 2
// =================================================
//
// A log is a directory holding a LOCK file (locked exclusively while a coordinator has the log open),
// a MANIFEST naming the log and its current segment, and segment files wal-{number:D16}.seg. All
// integers are little-endian. Version 1 logs (no manifest, one checksum per record) are refused with an
// "unsupported old format" error: let the release that wrote one recover and drain it first.
//
// MANIFEST, 32 + N bytes, replaced atomically (written to MANIFEST.tmp, fsynced, renamed, directory fsynced):
//    0  u32  magic "TPCM"
//    4  u16  format version (2)
//    6  u16  N, the byte count of the node id (0 = no coordinator node recorded yet)
//    8  u64  log id: random, chosen when the log is created; every segment header repeats it
//   16  u64  current segment number
//   24  N B  node id (UTF-8) of the coordinator that writes the log: opening it as another node is refused
// 24+N  u64  XxHash3-64 of bytes 0..24+N-1
//
// Segment header, 32 bytes:
//    0  u32  magic "TPCW"
//    4  u16  format version (2)
//    6  u16  flags (0)
//    8  u64  segment number, equal to the number in the file name
//   16  u64  log id, equal to the manifest's
//   24  u64  XxHash3-64 of bytes 0..23
//
// Batches follow the header back to back, one per flush (one write, one fsync); the first batch of a
// segment is its checkpoint (below), written and fsynced before the manifest names the segment.
// Batch, 28 bytes + records:
//    0  u32  batch length T (header to suffix)
//    4  u32  Z: how many pieces of bytes 24..T-1, cut at the file's 512-byte sector boundaries, are all zero
//    8  u64  XxHash3-64 of bytes 24..T-5 (the records), seeded with T
//   16  u64  XxHash3-64 of bytes 0..15
//   24       records
//  T-4  u32  T again
// Record, 8 bytes + payload, packed inside a batch (no per-record checksum: the batch's covers it):
//    0  u32  payload length L (at most 256 MiB)
//    4  u8   record type (0 is invalid)
//    5  3 B  reserved (0)
//    8  L B  payload
//
// Record types and payloads (TransactionRecordCodec). str = u32 byte count + UTF-8; bytes = u32
// count + bytes; time = i64 Unix milliseconds; ids in canonical text form, read back with
// GlobalTransactionId.Parse / Xid.Parse. A record that does not decode exactly (bad id, bad enum,
// trailing bytes) is corruption even though its batch's checksum matched.
//    1 Epoch           u64 epoch
//    2 CommitDecision  str gtrid, time decidedAt, u32 n, n x (str resourceManager, str xid, bytes recoveryData)
//    3 Heuristic       str gtrid, time recordedAt, u8 OutcomeKind, str reason,
//                      u32 n, n x (str resourceManager, str xid, u8 outcome: 0 = null, else 1 + BranchOutcome)
//    4 End             str gtrid: closes the transaction's decision and forgets its heuristic
//
// Writing (group commit): appenders encode their record straight into the open batch buffer under a
// short lock. One flusher thread swaps the buffer out, seals it (suffix, zero-sector count, checksums),
// writes it with a single positional write, fsyncs, and completes the one TaskCompletionSource every
// appender of that batch awaits. Appends arriving meanwhile form the next batch. END records never wait;
// a batch holding only ENDs is written without fsync (the next fsync covers it; losing it only repeats an
// idempotent commit).
//
// Recovery (WalDirectoryJudge, then WalSegmentReader; the inspector uses the same two):
//  - No manifest and no segment: a new log (epoch 1). No manifest but segments: corruption (the log's
//    identity is lost), except a lone segment 1 holding at most its header and empty first batch, whose
//    creation a crash interrupted: removed. A damaged manifest, or a missing or damaged current segment:
//    corruption. Segments below the current one (a checkpoint's deletions interrupted) and above it (a
//    checkpoint the manifest never switched to) hold nothing the log needs: removed.
//  - The current segment's batches are verified in order. The first bad batch is a torn tail (never
//    acknowledged) when the file ends inside it, or when it has more all-zero sector pieces than Z says
//    (sectors that never reached the disk), or its header or suffix reads as zeros: a fsync covering it
//    never completed, so nothing from it on was acknowledged, and it is truncated (even if a batch written
//    after it verifies), fsynced and reported. Anything else is corruption: a complete batch whose
//    checksum fails (bit rot), a verified batch whose records do not parse, damage to the first batch.
//    Opening then fails naming the file and offset; damaged records are never skipped.
//  - Batches are found only by following verified lengths, never by searching, so bytes inside a record
//    can never be taken for a batch.
//  Replay: Epoch -> max epoch; CommitDecision -> pending; Heuristic -> kept; End -> drops both.
//  Reading a record twice (an older copy and a checkpoint copy) gives the same state.
//
// Checkpoint / compaction: the transaction layer keeps the live set in memory (decisions without END,
// heuristics not forgotten, the current epoch). When the current segment has reached SegmentSize and
// at least half of it is not checkpoint copies (so a large live set cannot cause endless rollover),
// the flusher, before writing the next batch, creates segment n+1 with a header and a first batch holding
// a copy of every live record, fsyncs it and the directory, switches the manifest to n+1, and only then
// deletes segment n and fsyncs the directory again. The batch follows the copies. A crash at any point
// leaves a manifest naming a whole segment.
//
// Epochs: every open durably appends Epoch(max seen + 1, or 1 for an empty log) before returning, so
// epochs strictly increase across restarts even when a run logged nothing else.

using System.Buffers.Binary;
using System.Security.Cryptography;
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
internal sealed partial class WriteAheadLog : IAsyncDisposable
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
    private WalManifest? _manifest;
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
    public int SegmentCount => _segment is null ? 0 : 1;

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
        batch.SealBatch(_segmentLength);
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

    /// <summary>Starts segment n+1 with copies of the live records, switches the manifest to it, then deletes segment n.</summary>
    private void Checkpoint()
    {
        var number = _segmentNumber + 1;
        var path = Path.Combine(_directory, WalFormat.SegmentFileName(number));
        _checkpointBuffer.Reset();
        _checkpointBuffer.WriteSegmentHeader(number, _manifest!.LogId);
        _writeLiveRecords(_checkpointBuffer);
        _checkpointBuffer.SealBatch(0);
        var records = _checkpointBuffer.RecordCount;
        var handle = WriteNewSegment(path, _checkpointBuffer.WrittenSpan);

        // The copies are durable; once the manifest names the new segment, the old one is redundant.
        try
        {
            WriteManifest(_manifest with { CurrentSegment = number });
        }
        catch
        {
            handle.Dispose();
            throw;
        }

        var old = _segmentPath;
        _segment!.Dispose();
        _segment = handle;
        _segmentPath = path;
        _segmentNumber = number;
        _segmentLength = _checkpointBuffer.Length;
        _segmentCheckpointLength = _checkpointBuffer.Length;
        _logger.CheckpointWritten(path, records, _checkpointBuffer.Length);
        _metrics.BytesWritten.Add(_checkpointBuffer.Length);
        _checkpointBuffer.Reset();

        _fileSystem.DeleteFile(old);
        _fileSystem.FlushDirectory(_directory);
        _metrics.SegmentsDeleted.Add(1);
        _logger.SegmentsDeleted(1, _directory, number);
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
}
