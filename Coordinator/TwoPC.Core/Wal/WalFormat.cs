using System.Buffers.Binary;
using System.IO.Hashing;

namespace TwoPC.Wal;

/// <summary>
/// Byte layout of the manifest, segment headers, batches and records; see the format description at
/// the top of <c>WriteAheadLog.cs</c>. Everything is little-endian.
/// </summary>
internal static class WalFormat
{
    /// <summary>"TPCW" in file order.</summary>
    public const uint SegmentMagic = 'T' | ('P' << 8) | ('C' << 16) | ('W' << 24);

    /// <summary>"TPCM" in file order.</summary>
    public const uint ManifestMagic = 'T' | ('P' << 8) | ('C' << 16) | ('M' << 24);

    /// <summary>Version 2: batch frames, a manifest, segments tied to their log. Version 1 logs are refused.</summary>
    public const ushort FormatVersion = 2;

    public const int SegmentHeaderSize = 32;

    /// <summary>u32 batch length, u32 zero sectors, u64 body checksum, u64 header checksum.</summary>
    public const int BatchHeaderSize = 24;

    /// <summary>The u32 length suffix of a batch.</summary>
    public const int BatchTrailerSize = 4;

    /// <summary>A batch without records.</summary>
    public const int EmptyBatchSize = BatchHeaderSize + BatchTrailerSize;

    /// <summary>u32 payload length, u8 type, 3 reserved bytes.</summary>
    public const int RecordHeaderSize = 8;

    /// <summary>
    /// The unit in which a crash can leave a write half done: a sector of the file that never reached the
    /// disk reads back as zeros. 512 bytes is the smallest sector of any disk.
    /// </summary>
    public const int SectorSize = 512;

    /// <summary>The largest payload of one record (a decision with several 16 MiB recovery blobs fits).</summary>
    public const int MaxPayloadLength = 256 * 1024 * 1024;

    public const string SegmentFilePrefix = "wal-";

    public const string SegmentFileExtension = ".seg";

    public const string SegmentSearchPattern = "wal-*.seg";

    /// <summary>The file naming the log's identity and its current segment.</summary>
    public const string ManifestFileName = "MANIFEST";

    /// <summary>Where a new manifest is written before it is renamed over <see cref="ManifestFileName"/>.</summary>
    public const string ManifestTempFileName = "MANIFEST.tmp";

    /// <summary>The longest node id the manifest stores (node ids are far shorter).</summary>
    public const int MaxNodeIdBytes = 1024;

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

    public static void WriteSegmentHeader(Span<byte> destination, ulong segmentNumber, ulong logId)
    {
        var header = destination[..SegmentHeaderSize];
        header.Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(header, SegmentMagic);
        BinaryPrimitives.WriteUInt16LittleEndian(header[4..], FormatVersion);
        BinaryPrimitives.WriteUInt64LittleEndian(header[8..], segmentNumber);
        BinaryPrimitives.WriteUInt64LittleEndian(header[16..], logId);
        BinaryPrimitives.WriteUInt64LittleEndian(header[24..], XxHash3.HashToUInt64(header[..24]));
    }

    /// <summary>Verifies a segment header; <paramref name="problem"/> says what is wrong.</summary>
    /// <param name="data">The segment's bytes.</param>
    /// <param name="segmentNumber">The number in the header.</param>
    /// <param name="logId">The log the segment belongs to.</param>
    /// <param name="version">The format version in the header (also when it is not supported), or 0.</param>
    /// <param name="problem">Why the header is not valid.</param>
    public static bool TryReadSegmentHeader(ReadOnlySpan<byte> data, out ulong segmentNumber, out ulong logId, out ushort version, out string problem)
    {
        segmentNumber = 0;
        logId = 0;
        version = 0;
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

        version = BinaryPrimitives.ReadUInt16LittleEndian(data[4..]);
        if (version != FormatVersion)
        {
            problem = UnsupportedVersion(version);
            return false;
        }

        segmentNumber = BinaryPrimitives.ReadUInt64LittleEndian(data[8..]);
        logId = BinaryPrimitives.ReadUInt64LittleEndian(data[16..]);
        problem = string.Empty;
        return true;
    }

    /// <summary>The explanation for a log written in another format version.</summary>
    public static string UnsupportedVersion(ushort version) => version < FormatVersion
        ? $"unsupported old format version {version} (this build reads version {FormatVersion} only): let the TwoPC release that wrote it recover and finish every pending transaction, then start this release on an empty log directory"
        : $"unsupported format version {version} (this build reads version {FormatVersion}); it was written by a newer TwoPC release";

    /// <summary>Writes the record header in front of a payload already at <c>record[RecordHeaderSize..]</c>.</summary>
    public static void WriteRecordHeader(Span<byte> record, byte recordType, int payloadLength)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(record, (uint)payloadLength);
        record[4] = recordType;
        record[5] = 0;
        record[6] = 0;
        record[7] = 0;
    }

    /// <summary>
    /// Completes a batch whose records are already at <c>batch[BatchHeaderSize..(length - BatchTrailerSize)]</c>:
    /// writes its length suffix, counts the all-zero sectors after its header at <paramref name="fileOffset"/>,
    /// and writes the header.
    /// </summary>
    /// <param name="batch">The whole batch, header to suffix.</param>
    /// <param name="fileOffset">Where in the segment file the batch will be written.</param>
    public static void SealBatch(Span<byte> batch, long fileOffset)
    {
        var length = batch.Length;
        BinaryPrimitives.WriteUInt32LittleEndian(batch[(length - BatchTrailerSize)..], (uint)length);

        // Recovery compares this count with the sectors it reads back as zeros: more zeros than written
        // means a sector never reached the disk (a crash), anything else that fails the checksum is bit rot.
        var zeroSectors = CountZeroSectors(batch[BatchHeaderSize..], fileOffset + BatchHeaderSize);
        BinaryPrimitives.WriteUInt32LittleEndian(batch, (uint)length);
        BinaryPrimitives.WriteUInt32LittleEndian(batch[4..], (uint)zeroSectors);
        BinaryPrimitives.WriteUInt64LittleEndian(batch[8..], BatchBodyChecksum(batch));
        BinaryPrimitives.WriteUInt64LittleEndian(batch[16..], XxHash3.HashToUInt64(batch[..16]));
    }

    /// <summary>
    /// The number of all-zero pieces of <paramref name="bytes"/> when it is cut at the file's sector
    /// boundaries (<paramref name="fileOffset"/> is where it starts in the file).
    /// </summary>
    public static int CountZeroSectors(ReadOnlySpan<byte> bytes, long fileOffset)
    {
        var count = 0;
        var position = 0;
        while (position < bytes.Length)
        {
            var sectorEnd = (int)Math.Min(bytes.Length, SectorSize - ((fileOffset + position) % SectorSize) + position);
            if (!bytes[position..sectorEnd].ContainsAnyExcept((byte)0))
            {
                count++;
            }

            position = sectorEnd;
        }

        return count;
    }

    /// <summary>Reads a batch header whose checksum verifies.</summary>
    public static bool TryReadBatchHeader(ReadOnlySpan<byte> header, out int length, out int zeroSectors, out ulong bodyChecksum)
    {
        length = (int)Math.Min(int.MaxValue, BinaryPrimitives.ReadUInt32LittleEndian(header));
        zeroSectors = (int)Math.Min(int.MaxValue, BinaryPrimitives.ReadUInt32LittleEndian(header[4..]));
        bodyChecksum = BinaryPrimitives.ReadUInt64LittleEndian(header[8..]);
        return BinaryPrimitives.ReadUInt64LittleEndian(header[16..]) == XxHash3.HashToUInt64(header[..16]);
    }

    /// <summary>The checksum of a batch's records, seeded with its length.</summary>
    public static ulong BatchBodyChecksum(ReadOnlySpan<byte> batch) =>
        XxHash3.HashToUInt64(batch[BatchHeaderSize..(batch.Length - BatchTrailerSize)], batch.Length);
}
