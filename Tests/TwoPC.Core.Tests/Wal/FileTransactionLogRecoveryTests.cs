using TwoPC.Durability;
using TwoPC.Wal;
using static TwoPC.Tests.Wal.Records;

namespace TwoPC.Tests.Wal;

public sealed class FileTransactionLogRecoveryTests : IDisposable
{
    private readonly TempLogDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private async Task WriteDecisionsAsync(ulong from, ulong to)
    {
        await using var log = _dir.CreateLog();
        await log.OpenAsync(CancellationToken.None);
        for (var i = from; i <= to; i++)
        {
            await log.LogCommitDecisionAsync(Decision(i));
        }
    }

    private static IEnumerable<ulong> Range(ulong from, ulong to)
    {
        for (var i = from; i <= to; i++)
        {
            yield return i;
        }
    }

    [Fact]
    public async Task Record_cut_short_at_the_tail_is_truncated_reported_and_the_log_stays_appendable()
    {
        await WriteDecisionsAsync(1, 10);
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

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Garbage_after_the_last_record_is_truncated_and_reported(bool zeros)
    {
        await WriteDecisionsAsync(1, 10);
        var segment = _dir.LastSegment();
        var length = new FileInfo(segment).Length;
        var garbage = new byte[300];
        if (!zeros)
        {
            new Random(42).NextBytes(garbage);
        }

        using (var file = File.Open(segment, FileMode.Append))
        {
            file.Write(garbage);
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
    public async Task Bad_checksum_in_the_last_record_only_is_a_torn_tail()
    {
        await WriteDecisionsAsync(1, 10);
        var segment = _dir.LastSegment();
        var bytes = File.ReadAllBytes(segment);
        bytes[^10] ^= 0x01; // inside decision 10's payload
        File.WriteAllBytes(segment, bytes);

        await using var log = _dir.CreateLog();
        var state = await log.OpenAsync(CancellationToken.None);
        Assert.Contains("checksum", Assert.Single(state.Warnings), StringComparison.Ordinal);
        AssertPending(state, Range(1, 9));
    }

    [Fact]
    public async Task Flipped_bit_in_the_middle_followed_by_valid_records_is_corruption_naming_the_file()
    {
        await WriteDecisionsAsync(1, 20);
        var segment = _dir.LastSegment();
        var bytes = File.ReadAllBytes(segment);
        bytes[bytes.Length / 2] ^= 0x10;
        File.WriteAllBytes(segment, bytes);

        await using (var log = _dir.CreateLog())
        {
            var error = await Assert.ThrowsAsync<TransactionLogCorruptedException>(() => log.OpenAsync(CancellationToken.None).AsTask());
            Assert.Contains(segment, error.Message, StringComparison.Ordinal);
            Assert.Contains("a valid record follows", error.Message, StringComparison.Ordinal);
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
    public async Task Torn_tail_of_a_segment_that_is_not_the_last_is_corruption()
    {
        await WriteDecisionsAsync(1, 5);
        var first = _dir.LastSegment();
        var length = new FileInfo(first).Length;
        using (var file = File.Open(first, FileMode.Open))
        {
            file.SetLength(length - 3);
        }

        WriteSegment(2, []);

        await using var log = _dir.CreateLog();
        var error = await Assert.ThrowsAsync<TransactionLogCorruptedException>(() => log.OpenAsync(CancellationToken.None).AsTask());
        Assert.Contains(first, error.Message, StringComparison.Ordinal);
        Assert.Contains("not the last", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Last_segment_with_a_torn_header_is_removed_and_earlier_records_are_kept()
    {
        await WriteDecisionsAsync(1, 5);
        var torn = Path.Combine(_dir.Path, "wal-0000000000000002.seg");
        File.WriteAllBytes(torn, new byte[10]);

        await using (var log = _dir.CreateLog())
        {
            var state = await log.OpenAsync(CancellationToken.None);
            Assert.Contains(torn, Assert.Single(state.Warnings), StringComparison.Ordinal);
            AssertPending(state, Range(1, 5));
            await log.LogCommitDecisionAsync(Decision(6));
        }

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
        await WriteDecisionsAsync(1, 2);
        // A decision whose gtrid is not canonical: framed and checksummed correctly, but wrong.
        var payload = new byte[4 + 5 + 8 + 4];
        BitConverter.TryWriteBytes(payload.AsSpan(0), 5);
        "NODE!"u8.CopyTo(payload.AsSpan(4));
        WriteSegment(2, [(2, payload)]);

        await using var log = _dir.CreateLog();
        var error = await Assert.ThrowsAsync<TransactionLogCorruptedException>(() => log.OpenAsync(CancellationToken.None).AsTask());
        Assert.Contains("wal-0000000000000002.seg", error.Message, StringComparison.Ordinal);
        Assert.Contains("does not decode", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Same_decision_read_twice_from_an_old_segment_and_a_copy_is_harmless()
    {
        await WriteDecisionsAsync(1, 3);
        // As if a crash hit between writing a checkpoint and deleting the older segment.
        var buffer = new WalFrameBuffer();
        var decision = Decision(2);
        buffer.WriteFrame(2, decision, TransactionRecordCodec.MaxCommitDecisionLength(decision), TransactionRecordCodec.CommitDecisionEncoder);
        WriteSegment(2, [(2, buffer.WrittenSpan[WalFormat.FrameHeaderSize..^WalFormat.FrameTrailerSize].ToArray())]);
        buffer.Dispose();

        await using var log = _dir.CreateLog();
        var state = await log.OpenAsync(CancellationToken.None);
        Assert.Empty(state.Warnings);
        AssertPending(state, Range(1, 3));
        Assert.Equal(2UL, state.Epoch);
    }

    /// <summary>Writes a segment file with a valid header and the given (type, payload) records.</summary>
    private void WriteSegment(ulong number, (byte Type, byte[] Payload)[] records)
    {
        var buffer = new WalFrameBuffer();
        buffer.WriteSegmentHeader(number);
        foreach (var (type, payload) in records)
        {
            buffer.WriteFrame(type, payload, payload.Length, static (p, d) =>
            {
                p.CopyTo(d);
                return p.Length;
            });
        }

        File.WriteAllBytes(Path.Combine(_dir.Path, WalFormat.SegmentFileName(number)), buffer.WrittenSpan.ToArray());
        buffer.Dispose();
    }
}
