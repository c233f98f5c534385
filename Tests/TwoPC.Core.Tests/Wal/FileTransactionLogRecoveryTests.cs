using TwoPC.Durability;
using TwoPC.Wal;
using static TwoPC.Tests.Wal.Records;

namespace TwoPC.Tests.Wal;

public sealed class FileTransactionLogRecoveryTests : IDisposable
{
    private readonly TempLogDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task Record_cut_short_at_the_tail_is_truncated_reported_and_the_log_stays_appendable()
    {
        await _dir.WriteDecisionsAsync(1, 10);
        var segment = _dir.LastSegment();
        var length = new FileInfo(segment).Length;
        using (var file = File.Open(segment, FileMode.Open))
        {
            file.SetLength(length - 10); // decision 10 loses its last bytes, as in a crash mid-write
        }

        await using (var log = _dir.CreateLog())
        {
            var state = await log.OpenAsync(CancellationToken.None);
            var warning = Assert.Single(state.Warnings);
            Assert.Contains(Path.GetFileName(segment), warning, StringComparison.Ordinal);
            Assert.Contains("Truncated", warning, StringComparison.Ordinal);
            AssertPending(state, Range(1, 9));
            Assert.Equal(2UL, state.Epoch);
            await log.LogCommitDecisionAsync(Decision(11));
        }

        await using (var log = _dir.CreateLog())
        {
            var state = await log.OpenAsync(CancellationToken.None);
            Assert.Empty(state.Warnings);
            AssertPending(state, Range(1, 9).Append(11UL));
            Assert.Equal(3UL, state.Epoch);
        }
    }

    [Fact]
    public async Task Zeros_after_the_last_batch_are_truncated_and_reported()
    {
        await _dir.WriteDecisionsAsync(1, 10);
        var segment = _dir.LastSegment();
        var length = new FileInfo(segment).Length;
        using (var file = File.Open(segment, FileMode.Append))
        {
            file.Write(new byte[300]); // the file grew but the batch's sectors never reached the disk
        }

        await using (var log = _dir.CreateLog())
        {
            var state = await log.OpenAsync(CancellationToken.None);
            var warning = Assert.Single(state.Warnings);
            Assert.Contains($"Truncated 300 bytes of torn data at offset {length} of {segment}", warning, StringComparison.Ordinal);
            AssertPending(state, Range(1, 10));
        }

        Assert.True(new FileInfo(segment).Length > length); // truncated back, then the new epoch appended
    }

    [Fact]
    public async Task Random_bytes_after_the_last_batch_are_not_a_crash_and_refuse_to_start()
    {
        await _dir.WriteDecisionsAsync(1, 10);
        var segment = _dir.LastSegment();
        var length = new FileInfo(segment).Length;
        var garbage = new byte[300];
        new Random(42).NextBytes(garbage);
        using (var file = File.Open(segment, FileMode.Append))
        {
            file.Write(garbage); // a crash leaves a short file or zeroed sectors, never random bytes
        }

        await using var log = _dir.CreateLog();
        var error = await Assert.ThrowsAsync<TransactionLogCorruptedException>(() => log.OpenAsync(CancellationToken.None).AsTask());
        Assert.Contains($"at offset {length} of '{segment}'", error.Message, StringComparison.Ordinal);
        Assert.Equal(length + 300, new FileInfo(segment).Length);
    }

    [Fact]
    public async Task Flipped_bit_in_the_middle_followed_by_valid_records_is_corruption_naming_the_file()
    {
        await _dir.WriteDecisionsAsync(1, 20);
        var segment = _dir.LastSegment();
        var bytes = File.ReadAllBytes(segment);
        bytes[bytes.Length / 2] ^= 0x10;
        File.WriteAllBytes(segment, bytes);

        await using (var log = _dir.CreateLog())
        {
            var error = await Assert.ThrowsAsync<TransactionLogCorruptedException>(() => log.OpenAsync(CancellationToken.None).AsTask());
            Assert.Contains(segment, error.Message, StringComparison.Ordinal);
            Assert.Contains("does not match", error.Message, StringComparison.Ordinal);
        }

        Assert.Equal(bytes, File.ReadAllBytes(segment)); // nothing was "repaired"

        // The failed open released the lock: after restoring the bit the log opens with everything.
        bytes[bytes.Length / 2] ^= 0x10;
        File.WriteAllBytes(segment, bytes);
        await using (var log = _dir.CreateLog())
        {
            AssertPending(await log.OpenAsync(CancellationToken.None), Range(1, 20));
        }
    }

    [Fact]
    public async Task Damage_to_the_first_batch_of_the_segment_is_corruption_even_at_the_end_of_the_file()
    {
        await using (var log = _dir.CreateLog())
        {
            await log.OpenAsync(CancellationToken.None);
        }

        var segment = _dir.LastSegment();
        var bytes = File.ReadAllBytes(segment);
        Array.Resize(ref bytes, WalFormat.SegmentHeaderSize + 10); // the empty first batch, forced before the manifest named the segment
        File.WriteAllBytes(segment, bytes);

        await using var reopened = _dir.CreateLog();
        var error = await Assert.ThrowsAsync<TransactionLogCorruptedException>(() => reopened.OpenAsync(CancellationToken.None).AsTask());
        Assert.Contains("first batch", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_newer_segment_the_manifest_never_switched_to_is_removed_and_earlier_records_are_kept()
    {
        await _dir.WriteDecisionsAsync(1, 5);
        var torn = Path.Combine(_dir.Path, "wal-0000000000000002.seg");
        File.WriteAllBytes(torn, new byte[10]);

        await using (var log = _dir.CreateLog())
        {
            var state = await log.OpenAsync(CancellationToken.None);
            Assert.Contains(torn, Assert.Single(state.Warnings), StringComparison.Ordinal);
            AssertPending(state, Range(1, 5));
            await log.LogCommitDecisionAsync(Decision(6));
        }

        Assert.False(File.Exists(torn));
        await using (var log = _dir.CreateLog())
        {
            var state = await log.OpenAsync(CancellationToken.None);
            Assert.Empty(state.Warnings);
            AssertPending(state, Range(1, 6));
        }
    }

    [Fact]
    public async Task Record_with_a_valid_checksum_that_does_not_decode_is_corruption()
    {
        await _dir.WriteDecisionsAsync(1, 2);
        // A decision whose gtrid is not canonical: framed and checksummed correctly, but wrong.
        var payload = new byte[4 + 5 + 8 + 4];
        BitConverter.TryWriteBytes(payload.AsSpan(0), 5);
        "NODE!"u8.CopyTo(payload.AsSpan(4));
        AppendBatch([(2, payload)]);

        await using var log = _dir.CreateLog();
        var error = await Assert.ThrowsAsync<TransactionLogCorruptedException>(() => log.OpenAsync(CancellationToken.None).AsTask());
        Assert.Contains("wal-0000000000000001.seg", error.Message, StringComparison.Ordinal);
        Assert.Contains("does not decode", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Same_decision_read_twice_is_harmless()
    {
        await _dir.WriteDecisionsAsync(1, 3);
        // As if a checkpoint copy and the original were both read.
        var buffer = new WalFrameBuffer();
        var decision = Decision(2);
        buffer.WriteFrame(2, decision, TransactionRecordCodec.MaxCommitDecisionLength(decision), TransactionRecordCodec.CommitDecisionEncoder);
        buffer.SealBatch(0);
        AppendBatch([(2, buffer.WrittenSpan[(WalFormat.BatchHeaderSize + WalFormat.RecordHeaderSize)..^WalFormat.BatchTrailerSize].ToArray())]);
        buffer.Dispose();

        await using var log = _dir.CreateLog();
        var state = await log.OpenAsync(CancellationToken.None);
        Assert.Empty(state.Warnings);
        AssertPending(state, Range(1, 3));
        Assert.Equal(2UL, state.Epoch);
    }

    /// <summary>Appends one sealed batch of the given (type, payload) records to the current segment.</summary>
    private void AppendBatch((byte Type, byte[] Payload)[] records)
    {
        var segment = _dir.LastSegment();
        var offset = new FileInfo(segment).Length;
        var buffer = new WalFrameBuffer();
        foreach (var (type, payload) in records)
        {
            buffer.WriteFrame(type, payload, payload.Length, static (p, d) =>
            {
                p.CopyTo(d);
                return p.Length;
            });
        }

        buffer.SealBatch(offset);
        using (var file = File.Open(segment, FileMode.Append))
        {
            file.Write(buffer.WrittenSpan);
        }

        buffer.Dispose();
    }
}
