using System.Buffers;

namespace TwoPC.Wal;

/// <summary>Writes a record payload into <paramref name="destination"/> and returns its length.</summary>
/// <typeparam name="TState">What the payload is encoded from.</typeparam>
internal delegate int WalPayloadEncoder<in TState>(TState state, Span<byte> destination);

/// <summary>
/// A growable pooled buffer holding one group-commit batch (records, then sealed with its batch header and
/// suffix by the flusher), or a new segment's header and its first batch. Not thread-safe; the log guards it.
/// </summary>
internal sealed class WalFrameBuffer : IDisposable
{
    private const int InitialCapacity = 64 * 1024;

    // A batch that grew past this (a huge record, a big checkpoint) gives its array back afterwards.
    private const int RetainedCapacity = 4 * 1024 * 1024;

    private byte[] _buffer = ArrayPool<byte>.Shared.Rent(InitialCapacity);

    // Where the open batch's header starts, or -1 when no batch is open.
    private int _batchStart = -1;

    /// <summary>Bytes written.</summary>
    public int Length { get; private set; }

    /// <summary>Records written.</summary>
    public int RecordCount { get; private set; }

    /// <summary>The bytes written so far.</summary>
    public ReadOnlySpan<byte> WrittenSpan => _buffer.AsSpan(0, Length);

    /// <summary>
    /// Appends one record to the open batch (opening one if needed). The payload is encoded in place, so a
    /// record costs no allocation; if the encoder throws, the buffer is unchanged.
    /// </summary>
    public void WriteFrame<TState>(byte recordType, TState state, int maxPayloadLength, WalPayloadEncoder<TState> encoder)
    {
        if (recordType == 0)
        {
            throw new ArgumentOutOfRangeException(nameof(recordType), "Record type 0 is reserved.");
        }

        if (maxPayloadLength is < 0 or > WalFormat.MaxPayloadLength)
        {
            throw new ArgumentOutOfRangeException(nameof(maxPayloadLength), maxPayloadLength, $"A log record's payload is limited to {WalFormat.MaxPayloadLength} bytes.");
        }

        var opening = _batchStart < 0;
        var header = opening ? WalFormat.BatchHeaderSize : 0;
        EnsureCapacity(header + WalFormat.RecordHeaderSize + maxPayloadLength + WalFormat.BatchTrailerSize);
        var record = _buffer.AsSpan(Length + header);
        var payloadLength = encoder(state, record.Slice(WalFormat.RecordHeaderSize, maxPayloadLength));
        if ((uint)payloadLength > (uint)maxPayloadLength)
        {
            throw new InvalidOperationException($"The encoder wrote {payloadLength} bytes, more than the {maxPayloadLength} it reserved.");
        }

        WalFormat.WriteRecordHeader(record, recordType, payloadLength);
        if (opening)
        {
            _batchStart = Length;
        }

        Length += header + WalFormat.RecordHeaderSize + payloadLength;
        RecordCount++;
    }

    /// <summary>Appends a segment header; the buffer must hold no open batch.</summary>
    public void WriteSegmentHeader(ulong segmentNumber, ulong logId)
    {
        if (_batchStart >= 0)
        {
            throw new InvalidOperationException("A segment header cannot follow records in the same batch.");
        }

        EnsureCapacity(WalFormat.SegmentHeaderSize);
        WalFormat.WriteSegmentHeader(_buffer.AsSpan(Length), segmentNumber, logId);
        Length += WalFormat.SegmentHeaderSize;
    }

    /// <summary>
    /// Closes the open batch (an empty one if no record was written since the last seal): writes its
    /// suffix and header. <paramref name="fileOffset"/> is where the buffer's first byte will be written.
    /// </summary>
    public void SealBatch(long fileOffset)
    {
        if (_batchStart < 0)
        {
            EnsureCapacity(WalFormat.EmptyBatchSize);
            _batchStart = Length;
            Length += WalFormat.BatchHeaderSize;
        }

        Length += WalFormat.BatchTrailerSize;
        WalFormat.SealBatch(_buffer.AsSpan(_batchStart, Length - _batchStart), fileOffset + _batchStart);
        _batchStart = -1;
    }

    /// <summary>Empties the buffer for reuse.</summary>
    public void Reset()
    {
        Length = 0;
        RecordCount = 0;
        _batchStart = -1;
        if (_buffer.Length > RetainedCapacity)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = ArrayPool<byte>.Shared.Rent(InitialCapacity);
        }
    }

    private void EnsureCapacity(int additional)
    {
        var needed = (long)Length + additional;
        if (needed <= _buffer.Length)
        {
            return;
        }

        if (needed > Array.MaxLength)
        {
            throw new InvalidOperationException($"A log batch cannot exceed {Array.MaxLength} bytes.");
        }

        var larger = ArrayPool<byte>.Shared.Rent((int)Math.Min(Array.MaxLength, Math.Max(needed, 2L * _buffer.Length)));
        _buffer.AsSpan(0, Length).CopyTo(larger);
        ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = larger;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        var buffer = _buffer;
        _buffer = [];
        Length = 0;
        if (buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
