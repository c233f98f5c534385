using System.Buffers.Binary;

namespace TwoPC.Wal;

/// <summary>Receives one verified frame of a segment: its offset in the file, its type and its payload.</summary>
internal delegate void WalFrameHandler(int offset, byte recordType, ReadOnlySpan<byte> payload);

/// <summary>Where the frames of a segment stopped verifying.</summary>
/// <param name="Offset">The offset of the first bad frame, or the segment's length when every frame verified.</param>
/// <param name="Problem">Why the frame at <paramref name="Offset"/> is bad, or <see langword="null"/>.</param>
internal readonly record struct WalScanEnd(int Offset, string? Problem)
{
    /// <summary>True when every frame up to the end of the segment verified.</summary>
    public bool IsClean => Problem is null;
}

/// <summary>
/// Verifies the frames of one segment held in memory, without touching the disk. Shared by recovery
/// (<see cref="WriteAheadLog"/>) and the offline inspector so both judge the bytes the same way.
/// </summary>
internal static class WalSegmentReader
{
    /// <summary>
    /// Verifies the frames that follow the segment header, calling <paramref name="onFrame"/> for each one
    /// in order, and stops at the first frame that does not verify (or at the end of the data).
    /// </summary>
    /// <param name="data">The whole segment.</param>
    /// <param name="onFrame">Called for each verified frame.</param>
    /// <param name="start">Where the first frame begins: right after the header unless resuming past damage.</param>
    public static WalScanEnd ReadFrames(ReadOnlySpan<byte> data, WalFrameHandler onFrame, int start = WalFormat.SegmentHeaderSize)
    {
        var offset = start;
        while (offset < data.Length)
        {
            var rest = data[offset..];
            if (!WalFormat.TryReadFrame(rest, out var recordType, out var payloadLength, out var problem))
            {
                return new WalScanEnd(offset, problem);
            }

            onFrame(offset, recordType, rest.Slice(WalFormat.FrameHeaderSize, payloadLength));
            offset += WalFormat.FrameOverhead + payloadLength;
        }

        return new WalScanEnd(Math.Min(offset, data.Length), null);
    }

    /// <summary>The first offset at or after <paramref name="start"/> where a complete, verified frame begins, or -1.</summary>
    public static long FindValidFrame(ReadOnlySpan<byte> data, int start)
    {
        for (var offset = start; offset <= data.Length - WalFormat.FrameOverhead; offset++)
        {
            var length = BinaryPrimitives.ReadUInt32LittleEndian(data[offset..]);
            // Cheap filters first: the length must fit and the suffix must repeat it.
            if (length > (uint)(data.Length - offset - WalFormat.FrameOverhead)
                || BinaryPrimitives.ReadUInt32LittleEndian(data[(offset + WalFormat.FrameHeaderSize + (int)length)..]) != length)
            {
                continue;
            }

            if (WalFormat.TryReadFrame(data[offset..], out _, out _, out _))
            {
                return offset;
            }
        }

        return -1;
    }
}
