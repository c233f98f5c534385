using System.Buffers.Binary;

namespace TwoPC.Wal;

/// <summary>Receives one record of a verified batch: the batch's offset, the record's offset, its type and payload.</summary>
internal delegate void WalRecordVisitor(int batchOffset, int recordOffset, byte recordType, ReadOnlySpan<byte> payload);

/// <summary>What damage in a log is, and so what recovery does about it.</summary>
internal enum WalDamageKind
{
    /// <summary>Data that was never acknowledged (a crash mid-write): recovery truncates or removes it.</summary>
    TornTail,

    /// <summary>Damage to acknowledged data, or a log that is not whole: recovery refuses to start.</summary>
    Corruption,
}

/// <summary>Where the batches of a segment stopped verifying, and the verdict on what follows.</summary>
/// <param name="Offset">The offset of the first bad batch, or the segment's length when every batch verified.</param>
/// <param name="Damage">The verdict on the bytes from <paramref name="Offset"/> on, or <see langword="null"/> when clean.</param>
/// <param name="Problem">What is wrong at <paramref name="Offset"/>, or <see langword="null"/>.</param>
internal readonly record struct WalScanEnd(int Offset, WalDamageKind? Damage, string? Problem)
{
    /// <summary>True when every batch up to the end of the segment verified.</summary>
    public bool IsClean => Damage is null;
}

/// <summary>
/// The one judge of a segment's bytes: verifies its batches in order and classifies the first bad one as a
/// torn tail or corruption. Pure (no disk access); recovery (<see cref="WriteAheadLog"/>) acts on its verdict
/// and the inspector (<c>TransactionLogInspector</c>) reports it.
/// </summary>
/// <remarks>
/// A crash can leave the batches written after the last completed fsync short (the file ends inside
/// them) or with sectors that never reached the disk, which read back as zeros. Both mean no fsync
/// covering that batch completed, so nothing from it on was acknowledged: a torn tail. Any other
/// mismatch (a bit flipped in a complete batch, a batch that verifies but does not parse) is corruption,
/// as is any damage to a segment's first batch, which is forced to disk before the segment is used.
/// Batches are found only by following verified lengths, never by searching, so bytes inside a record can
/// never be taken for a batch.
/// </remarks>
internal static class WalSegmentReader
{
    /// <summary>
    /// Verifies the batches that follow the segment header, calling <paramref name="onRecord"/> for each record
    /// of each batch that verifies (a batch's records are delivered only once the whole batch verified and parsed),
    /// and stops at the first batch that does not.
    /// </summary>
    /// <param name="segment">The whole segment, header included.</param>
    /// <param name="onRecord">Called for each record of each verified batch, in order.</param>
    public static WalScanEnd ReadBatches(ReadOnlySpan<byte> segment, WalRecordVisitor onRecord)
    {
        var offset = WalFormat.SegmentHeaderSize;
        while (offset < segment.Length)
        {
            var (length, damage, problem) = VerifyBatch(segment, offset);
            if (damage is not null)
            {
                if (offset == WalFormat.SegmentHeaderSize)
                {
                    // The first batch (the checkpoint, or the empty batch of a new log) was forced to disk
                    // before the manifest named this segment: damage to it was acknowledged data.
                    return new WalScanEnd(offset, WalDamageKind.Corruption, $"{problem}, in the segment's first batch, which was forced to disk before the segment was used");
                }

                return new WalScanEnd(offset, damage, problem);
            }

            var batch = segment.Slice(offset, length);
            var body = batch[WalFormat.BatchHeaderSize..^WalFormat.BatchTrailerSize];
            if (ParseRecords(body) is { } parseProblem)
            {
                return new WalScanEnd(offset, WalDamageKind.Corruption, $"the batch verifies but its records do not parse ({parseProblem})");
            }

            var position = 0;
            while (position < body.Length)
            {
                var payloadLength = (int)BinaryPrimitives.ReadUInt32LittleEndian(body[position..]);
                onRecord(offset, offset + WalFormat.BatchHeaderSize + position, body[position + 4], body.Slice(position + WalFormat.RecordHeaderSize, payloadLength));
                position += WalFormat.RecordHeaderSize + payloadLength;
            }

            offset += length;
        }

        if (offset == WalFormat.SegmentHeaderSize)
        {
            return new WalScanEnd(offset, WalDamageKind.Corruption, "the segment has no batch: its first batch, forced to disk before the segment was used, is missing");
        }

        return new WalScanEnd(offset, null, null);
    }

    /// <summary>Verifies the batch at <paramref name="offset"/>: its length, or the verdict on why it is bad.</summary>
    private static (int Length, WalDamageKind? Damage, string? Problem) VerifyBatch(ReadOnlySpan<byte> segment, int offset)
    {
        var rest = segment[offset..];
        if (rest.Length < WalFormat.BatchHeaderSize)
        {
            return (0, WalDamageKind.TornTail, $"only {rest.Length} bytes remain, less than a batch header: the file ends inside a batch");
        }

        if (!WalFormat.TryReadBatchHeader(rest, out var length, out var zeroSectors, out var bodyChecksum))
        {
            return HasZeroSector(rest[..WalFormat.BatchHeaderSize], offset)
                ? (0, WalDamageKind.TornTail, "the batch header reads as zeros: it never reached the disk")
                : (0, WalDamageKind.Corruption, "the batch header checksum does not match");
        }

        if (length < WalFormat.EmptyBatchSize)
        {
            return (0, WalDamageKind.Corruption, $"the batch header verifies but gives an impossible length {length}");
        }

        if (length > rest.Length)
        {
            return (0, WalDamageKind.TornTail, $"the batch ({length} bytes) runs past the end of the file");
        }

        var batch = rest[..length];
        var suffix = batch[^WalFormat.BatchTrailerSize..];
        if (BinaryPrimitives.ReadUInt32LittleEndian(suffix) != (uint)length)
        {
            return HasZeroSector(suffix, offset + length - WalFormat.BatchTrailerSize)
                ? (0, WalDamageKind.TornTail, "the batch's length suffix reads as zeros: its end never reached the disk")
                : (0, WalDamageKind.Corruption, "the batch's length suffix does not match its length prefix");
        }

        if (WalFormat.BatchBodyChecksum(batch) != bodyChecksum)
        {
            var zerosNow = WalFormat.CountZeroSectors(batch[WalFormat.BatchHeaderSize..], offset + WalFormat.BatchHeaderSize);
            return zerosNow > zeroSectors
                ? (0, WalDamageKind.TornTail, $"{zerosNow - zeroSectors} sector(s) of the batch read as zeros: they never reached the disk")
                : (0, WalDamageKind.Corruption, "the batch checksum does not match (its length prefix and suffix are intact, so this is not a torn write)");
        }

        return (length, null, null);
    }

    /// <summary>True when a piece of <paramref name="bytes"/> between two sector boundaries is all zeros.</summary>
    private static bool HasZeroSector(ReadOnlySpan<byte> bytes, long fileOffset) => WalFormat.CountZeroSectors(bytes, fileOffset) > 0;

    /// <summary>Checks that the records fill the batch body exactly; returns the problem, or null.</summary>
    private static string? ParseRecords(ReadOnlySpan<byte> body)
    {
        var position = 0;
        while (position < body.Length)
        {
            if (body.Length - position < WalFormat.RecordHeaderSize)
            {
                return $"{body.Length - position} bytes left over at the end";
            }

            var payloadLength = BinaryPrimitives.ReadUInt32LittleEndian(body[position..]);
            if (body[position + 4] == 0 || body[position + 5] != 0 || body[position + 6] != 0 || body[position + 7] != 0)
            {
                return "a record type is zero or its reserved bytes are not";
            }

            if (payloadLength > WalFormat.MaxPayloadLength || payloadLength > (uint)(body.Length - position - WalFormat.RecordHeaderSize))
            {
                return $"a record length {payloadLength} runs past the batch";
            }

            position += WalFormat.RecordHeaderSize + (int)payloadLength;
        }

        return null;
    }
}
