using System.Buffers.Binary;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;
using TwoPC.Diagnostics;
using TwoPC.Durability;

namespace TwoPC.Wal;

// Opening: take the lock, read the manifest, verify and replay the current segment, repair a torn tail or refuse
// damage, create a new log; also the manifest and segment writes the checkpoint shares. The format is specified in
// WriteAheadLog.cs.
internal sealed partial class WriteAheadLog
{
    /// <summary>
    /// Takes the directory lock, verifies the log and replays every record through <paramref name="onRecord"/>,
    /// repairs a torn tail, and starts the flusher. Returns what was repaired.
    /// </summary>
    /// <param name="nodeId">The coordinator node opening the log; <see langword="null"/> neither checks nor records one.</param>
    /// <param name="onRecord">Receives every record, in log order.</param>
    /// <param name="cancellationToken">Cancels before the log is changed.</param>
    /// <exception cref="TransactionLogLockedException">Another owner holds the directory.</exception>
    /// <exception cref="TransactionLogNodeMismatchException">The log was written by another coordinator node.</exception>
    /// <exception cref="TransactionLogCorruptedException">Damage that is not a torn tail, or a log that is not whole.</exception>
    public IReadOnlyList<string> Open(string? nodeId, WalRecordHandler onRecord, CancellationToken cancellationToken)
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
            var verdict = WalDirectoryJudge.Judge(_directory, ReadManifest(), ListSegments());
            if (verdict.Corruption is { } corruption)
            {
                throw Corrupt(verdict.CorruptPath!, verdict.CorruptOffset, corruption);
            }

            cancellationToken.ThrowIfCancellationRequested();
            if (verdict.IsNew)
            {
                RemoveLeftovers(verdict.Leftovers, warnings);
                CreateLog(nodeId);
            }
            else
            {
                var manifest = verdict.Manifest!;
                if (nodeId is not null && manifest.NodeId is { } logNode && !string.Equals(logNode, nodeId, StringComparison.Ordinal))
                {
                    _logger.NodeMismatch(_directory, logNode, nodeId);
                    throw new TransactionLogNodeMismatchException(_directory, logNode, nodeId);
                }

                _manifest = manifest;
                ReadCurrentSegment(verdict.Current!, onRecord, warnings);
                RemoveLeftovers(verdict.Leftovers, warnings);
                if (nodeId is not null && manifest.NodeId is null)
                {
                    WriteManifest(manifest with { NodeId = nodeId });
                }
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

    private byte[]? ReadManifest()
    {
        foreach (var stale in _fileSystem.ListFiles(_directory, WalFormat.ManifestTempFileName))
        {
            // A manifest write a crash interrupted before its rename: the old manifest is still in force.
            _fileSystem.DeleteFile(stale);
        }

        var path = Path.Combine(_directory, WalFormat.ManifestFileName);
        if (_fileSystem.ListFiles(_directory, WalFormat.ManifestFileName).Count == 0)
        {
            return null;
        }

        using var handle = _fileSystem.OpenFile(path, FileMode.Open);
        return ReadAll(handle, path, limit: 64 * 1024);
    }

    private List<WalSegmentFile> ListSegments()
    {
        var segments = new List<WalSegmentFile>();
        foreach (var path in _fileSystem.ListFiles(_directory, WalFormat.SegmentSearchPattern))
        {
            if (WalFormat.TryParseSegmentFileName(Path.GetFileName(path), out var number))
            {
                using var handle = _fileSystem.OpenFile(path, FileMode.Open);
                var length = _fileSystem.GetLength(handle);
                var head = new byte[(int)Math.Min(length, WalFormat.SegmentHeaderSize)];
                ReadExactly(handle, head, path);
                segments.Add(new WalSegmentFile(number, path, length, head));
            }
        }

        segments.Sort((a, b) => a.Number.CompareTo(b.Number));
        return segments;
    }

    private void RemoveLeftovers(IReadOnlyList<WalLeftover> leftovers, List<string> warnings)
    {
        if (leftovers.Count == 0)
        {
            return;
        }

        foreach (var leftover in leftovers)
        {
            _fileSystem.DeleteFile(leftover.Path);
            warnings.Add($"Removed {leftover.Path} ({leftover.Length} bytes): {leftover.Reason}.");
            _logger.TornSegmentRemoved(leftover.Path, leftover.Length, leftover.Reason);
        }

        _fileSystem.FlushDirectory(_directory);
    }

    /// <summary>A new log: segment 1 with an empty first batch, then the manifest that makes it the log.</summary>
    private void CreateLog(string? nodeId)
    {
        var manifest = new WalManifest(BinaryPrimitives.ReadUInt64LittleEndian(RandomNumberGenerator.GetBytes(sizeof(ulong))), 1, nodeId);
        var path = Path.Combine(_directory, WalFormat.SegmentFileName(1));
        using var buffer = new WalFrameBuffer();
        buffer.WriteSegmentHeader(1, manifest.LogId);
        buffer.SealBatch(0);
        var handle = WriteNewSegment(path, buffer.WrittenSpan);
        try
        {
            WriteManifest(manifest);
        }
        catch
        {
            handle.Dispose();
            throw;
        }

        _segment = handle;
        _segmentPath = path;
        _segmentNumber = 1;
        _segmentLength = buffer.Length;
        _segmentCheckpointLength = buffer.Length;
    }

    private SafeFileHandle WriteNewSegment(string path, ReadOnlySpan<byte> content)
    {
        var handle = _fileSystem.OpenFile(path, FileMode.CreateNew);
        try
        {
            _fileSystem.Write(handle, content, 0);
            _fileSystem.FlushToDisk(handle);
            _fileSystem.FlushDirectory(_directory);
            return handle;
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>Replaces the manifest atomically: temporary file, fsync, rename, directory fsync.</summary>
    private void WriteManifest(WalManifest manifest)
    {
        var temp = Path.Combine(_directory, WalFormat.ManifestTempFileName);
        using (var handle = _fileSystem.OpenFile(temp, FileMode.Create))
        {
            _fileSystem.Write(handle, manifest.Encode(), 0);
            _fileSystem.FlushToDisk(handle);
        }

        _fileSystem.MoveFile(temp, Path.Combine(_directory, WalFormat.ManifestFileName));
        _fileSystem.FlushDirectory(_directory);
        _manifest = manifest;
    }

    /// <summary>Verifies and replays the current segment, truncates a torn tail, and keeps it open for appending.</summary>
    private void ReadCurrentSegment(WalSegmentFile segment, WalRecordHandler onRecord, List<string> warnings)
    {
        var path = segment.Path;
        var handle = _fileSystem.OpenFile(path, FileMode.Open);
        try
        {
            var data = ReadAll(handle, path, limit: Array.MaxLength);
            var end = WalSegmentReader.ReadBatches(data, (_, recordOffset, recordType, payload) =>
            {
                try
                {
                    onRecord(recordType, payload);
                }
                catch (Exception ex) when (ex is FormatException or InvalidDataException or ArgumentException or OverflowException)
                {
                    throw Corrupt(path, recordOffset, $"a record of type {recordType} has a valid checksum but does not decode: {ex.Message}", ex);
                }
            });

            if (end.Damage == WalDamageKind.Corruption)
            {
                throw Corrupt(path, end.Offset, end.Problem!);
            }

            if (end.Damage == WalDamageKind.TornTail)
            {
                var dropped = data.Length - end.Offset;
                _fileSystem.SetLength(handle, end.Offset);
                _fileSystem.FlushToDisk(handle);
                warnings.Add($"Truncated {dropped} bytes of torn data at offset {end.Offset} of {path} ({end.Problem}).");
                _logger.TornTailTruncated(dropped, path, end.Offset, end.Problem!);
            }

            _segment = handle;
            _segmentPath = path;
            _segmentNumber = segment.Number;
            _segmentLength = end.Offset;
            _segmentCheckpointLength = WalFormat.SegmentHeaderSize + BinaryPrimitives.ReadUInt32LittleEndian(data.AsSpan(WalFormat.SegmentHeaderSize));
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    private byte[] ReadAll(SafeFileHandle handle, string path, long limit)
    {
        var length = _fileSystem.GetLength(handle);
        if (length > limit)
        {
            throw Corrupt(path, 0, $"the file is {length} bytes, larger than any this log writes");
        }

        var data = new byte[length];
        ReadExactly(handle, data, path);
        return data;
    }

    private void ReadExactly(SafeFileHandle handle, byte[] data, string path)
    {
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
    }

    private static TransactionLogCorruptedException Corrupt(string path, long offset, string problem, Exception? inner = null)
    {
        var message = $"The transaction log is corrupt at offset {offset} of '{path}': {problem}. Recovery never skips damaged records; restore or investigate the file before starting the coordinator.";
        return inner is null ? new TransactionLogCorruptedException(message) : new TransactionLogCorruptedException(message, inner);
    }
}
