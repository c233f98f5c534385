using System.Buffers.Binary;
using System.IO.Hashing;

namespace TwoPC.Wal;

/// <summary>
/// Byte layout of segment headers and record frames; see the format description at the top of
/// <c>WriteAheadLog.cs</c>. Everything is little-endian.
/// </summary>
internal static class WalFormat
{
    /// <summary>"TPCW" in file order.</summary>
    public const uint SegmentMagic = 'T' | ('P' << 8) | ('C' << 16) | ('W' << 24);

    public const ushort FormatVersion = 1;

    public const int SegmentHeaderSize = 32;

    /// <summary>u32 length, u8 type, 3 reserved bytes, u64 checksum.</summary>
    public const int FrameHeaderSize = 16;

    /// <summary>The u32 length suffix.</summary>
    public const int FrameTrailerSize = 4;

    public const int FrameOverhead = FrameHeaderSize + FrameTrailerSize;

    /// <summary>The largest payload of one record (a decision with several 16 MiB recovery blobs fits).</summary>
    public const int MaxPayloadLength = 256 * 1024 * 1024;

    public const string SegmentFilePrefix = "wal-";

    public const string SegmentFileExtension = ".seg";

    public const string SegmentSearchPattern = "wal-*.seg";

    public static string SegmentFileName(ulong number) => $"{SegmentFilePrefix}{number:D16}{SegmentFileExtension}";

    /// <summary>Parses <c>wal-{number:D16}.seg</c>; other names are not segments.</summary>
    public static bool TryParseSegmentFileName(string fileName, out ulong number)
    {
        number = 0;
        var expectedLength = SegmentFilePrefix.Length + 16 + SegmentFileExtension.Length;
        if (fileName.Length != expectedLength
            || !fileName.StartsWith(SegmentFilePrefix, StringComparison.Ordinal)
            || !fileName.EndsWith(SegmentFileExtension, StringComparison.Ordinal))
        {
            return false;
        }

        var digits = fileName.AsSpan(SegmentFilePrefix.Length, 16);
        foreach (var c in digits)
        {
            if (c is < '0' or > '9')
            {
                return false;
            }
        }

        return ulong.TryParse(digits, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out number);
    }

    public static void WriteSegmentHeader(Span<byte> destination, ulong segmentNumber)
    {
        var header = destination[..SegmentHeaderSize];
        header.Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(header, SegmentMagic);
        BinaryPrimitives.WriteUInt16LittleEndian(header[4..], FormatVersion);
        BinaryPrimitives.WriteUInt64LittleEndian(header[8..], segmentNumber);
        BinaryPrimitives.WriteUInt64LittleEndian(header[24..], XxHash3.HashToUInt64(header[..24]));
    }

    /// <summary>Verifies a segment header; <paramref name="problem"/> says what is wrong.</summary>
    public static bool TryReadSegmentHeader(ReadOnlySpan<byte> data, out ulong segmentNumber, out string problem)
    {
        segmentNumber = 0;
        if (data.Length < SegmentHeaderSize)
        {
            problem = $"the file is shorter ({data.Length} bytes) than a segment header";
            return false;
        }

        if (BinaryPrimitives.ReadUInt64LittleEndian(data[24..]) != XxHash3.HashToUInt64(data[..24]))
        {
            problem = "the segment header checksum does not match";
            return false;
        }

        if (BinaryPrimitives.ReadUInt32LittleEndian(data) != SegmentMagic)
        {
            problem = "the file does not start with the segment magic";
            return false;
        }

        var version = BinaryPrimitives.ReadUInt16LittleEndian(data[4..]);
        if (version != FormatVersion)
        {
            problem = $"unsupported format version {version} (this build reads version {FormatVersion})";
            return false;
        }

        segmentNumber = BinaryPrimitives.ReadUInt64LittleEndian(data[8..]);
        problem = string.Empty;
        return true;
    }

    /// <summary>
    /// Completes a frame whose payload is already at <c>frame[FrameHeaderSize..]</c>: writes the header,
    /// checksum and length suffix. Returns the frame's total length.
    /// </summary>
    public static int SealFrame(Span<byte> frame, byte recordType, int payloadLength)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(frame, (uint)payloadLength);
        frame[4] = recordType;
        frame[5] = 0;
        frame[6] = 0;
        frame[7] = 0;
        var checksum = Checksum(frame[..8], frame.Slice(FrameHeaderSize, payloadLength));
        BinaryPrimitives.WriteUInt64LittleEndian(frame[8..], checksum);
        BinaryPrimitives.WriteUInt32LittleEndian(frame[(FrameHeaderSize + payloadLength)..], (uint)payloadLength);
        return FrameOverhead + payloadLength;
    }

    /// <summary>
    /// Verifies the frame at the start of <paramref name="data"/>. On success returns its type and
    /// payload length; otherwise <paramref name="problem"/> says why it is not a valid frame.
    /// </summary>
    public static bool TryReadFrame(ReadOnlySpan<byte> data, out byte recordType, out int payloadLength, out string problem)
    {
        recordType = 0;
        payloadLength = 0;
        if (data.Length < FrameOverhead)
        {
            problem = $"only {data.Length} bytes remain, less than a record frame";
            return false;
        }

        var length = BinaryPrimitives.ReadUInt32LittleEndian(data);
        if (length > MaxPayloadLength)
        {
            problem = $"the record length {length} exceeds the maximum {MaxPayloadLength}";
            return false;
        }

        if ((long)FrameOverhead + length > data.Length)
        {
            problem = $"the record ({length} payload bytes) runs past the end of the file";
            return false;
        }

        if (data[4] == 0 || data[5] != 0 || data[6] != 0 || data[7] != 0)
        {
            problem = "the record type is zero or the reserved bytes are not";
            return false;
        }

        var payload = data.Slice(FrameHeaderSize, (int)length);
        if (BinaryPrimitives.ReadUInt32LittleEndian(data[(FrameHeaderSize + (int)length)..]) != length)
        {
            problem = "the length suffix does not match the length prefix";
            return false;
        }

        if (BinaryPrimitives.ReadUInt64LittleEndian(data[8..]) != Checksum(data[..8], payload))
        {
            problem = "the record checksum does not match";
            return false;
        }

        recordType = data[4];
        payloadLength = (int)length;
        problem = string.Empty;
        return true;
    }

    // XxHash3 of the payload seeded with the frame's first 8 bytes (length, type, reserved):
    // covers all of them without copying them next to the payload.
    private static ulong Checksum(ReadOnlySpan<byte> lengthAndType, ReadOnlySpan<byte> payload) =>
        XxHash3.HashToUInt64(payload, BinaryPrimitives.ReadInt64LittleEndian(lengthAndType));
}
