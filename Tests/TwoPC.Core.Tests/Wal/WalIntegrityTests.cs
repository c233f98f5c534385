using TwoPC.Durability;
using TwoPC.Protocol;
using TwoPC.Transactions;
using TwoPC.Wal;
using static TwoPC.Tests.Wal.Records;

namespace TwoPC.Tests.Wal;

/// <summary>
/// Issue 10, items 15-17 and the node id of item 11: no acknowledged record may be lost silently.
/// Torn tails (data never acknowledged) are repaired; everything else refuses to open.
/// </summary>
public sealed class WalIntegrityTests : IDisposable
{
    private readonly TempLogDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task Item15_bit_rot_in_the_last_complete_record_is_corruption_naming_file_and_offset_not_a_torn_tail()
    {
        await _dir.WriteDecisionsAsync(1, 10);
        var segment = _dir.LastSegment();
        var bytes = File.ReadAllBytes(segment);
        bytes[^10] ^= 0x01; // inside decision 10, the last acknowledged record: its frame is complete
        File.WriteAllBytes(segment, bytes);

        await using (var log = _dir.CreateLog())
        {
            var error = await Assert.ThrowsAsync<TransactionLogCorruptedException>(() => log.OpenAsync(CancellationToken.None).AsTask());
            Assert.Contains(segment, error.Message, StringComparison.Ordinal);
            Assert.Matches("at offset [0-9]+ of", error.Message);
        }

        Assert.Equal(bytes, File.ReadAllBytes(segment)); // nothing truncated
    }

    [Fact]
    public async Task Item16_deleting_the_only_segment_refuses_to_start_instead_of_restarting_at_epoch_one()
    {
        await _dir.WriteDecisionsAsync(1, 5);
        var segment = _dir.LastSegment();
        File.Delete(segment);

        await using var log = _dir.CreateLog();
        var error = await Assert.ThrowsAsync<TransactionLogCorruptedException>(() => log.OpenAsync(CancellationToken.None).AsTask());
        Assert.Contains(Path.GetFileName(segment), error.Message, StringComparison.Ordinal);
        Assert.Contains("missing", error.Message, StringComparison.Ordinal);
        Assert.Empty(_dir.Segments()); // nothing recreated
    }

    [Fact]
    public async Task Item16_zeroing_the_only_segment_refuses_to_start()
    {
        await _dir.WriteDecisionsAsync(1, 5);
        var segment = _dir.LastSegment();
        File.WriteAllBytes(segment, new byte[new FileInfo(segment).Length]);

        await using var log = _dir.CreateLog();
        var error = await Assert.ThrowsAsync<TransactionLogCorruptedException>(() => log.OpenAsync(CancellationToken.None).AsTask());
        Assert.Contains(segment, error.Message, StringComparison.Ordinal);
        Assert.True(File.Exists(segment));
    }

    [Fact]
    public async Task Item16_an_emptied_segment_refuses_to_start()
    {
        await _dir.WriteDecisionsAsync(1, 5);
        var segment = _dir.LastSegment();
        File.WriteAllBytes(segment, []);

        await using var log = _dir.CreateLog();
        var error = await Assert.ThrowsAsync<TransactionLogCorruptedException>(() => log.OpenAsync(CancellationToken.None).AsTask());
        Assert.Contains(segment, error.Message, StringComparison.Ordinal);
        Assert.Empty(File.ReadAllBytes(segment));
    }

    [Fact]
    public async Task A_log_in_the_old_format_version_1_is_refused_as_unsupported_not_reinitialised()
    {
        // A version 1 segment: its 32-byte header (no manifest existed in version 1).
        Directory.CreateDirectory(_dir.Path);
        var header = new byte[32];
        BitConverter.TryWriteBytes(header.AsSpan(0), WalFormat.SegmentMagic);
        BitConverter.TryWriteBytes(header.AsSpan(4), (ushort)1);
        BitConverter.TryWriteBytes(header.AsSpan(8), 1UL);
        BitConverter.TryWriteBytes(header.AsSpan(24), System.IO.Hashing.XxHash3.HashToUInt64(header.AsSpan(0, 24)));
        var segment = Path.Combine(_dir.Path, WalFormat.SegmentFileName(1));
        File.WriteAllBytes(segment, [.. header, .. new byte[100]]);

        await using var log = _dir.CreateLog();
        var error = await Assert.ThrowsAsync<TransactionLogCorruptedException>(() => log.OpenAsync(CancellationToken.None).AsTask());
        Assert.Contains("unsupported old format version 1", error.Message, StringComparison.Ordinal);
        Assert.Equal(132, new FileInfo(segment).Length);
        Assert.False(File.Exists(Path.Combine(_dir.Path, "MANIFEST")));
    }

    [Fact]
    public async Task Item16_segments_without_the_log_identity_refuse_to_start()
    {
        await _dir.WriteDecisionsAsync(1, 5);
        foreach (var file in Directory.GetFiles(_dir.Path).Where(f => !Path.GetFileName(f).StartsWith("wal-", StringComparison.Ordinal) && Path.GetFileName(f) != "LOCK"))
        {
            File.Delete(file); // the identity/manifest, whatever it is called
        }

        await using var log = _dir.CreateLog();
        await Assert.ThrowsAsync<TransactionLogCorruptedException>(() => log.OpenAsync(CancellationToken.None).AsTask());
    }

    [Fact]
    public async Task Item16_deleting_the_current_segment_after_rollovers_refuses_to_start()
    {
        await using (var log = _dir.CreateLog(segmentSize: FileTransactionLogOptions.MinimumSegmentSize))
        {
            await log.OpenAsync(CancellationToken.None);
            for (ulong i = 1; i <= 200; i++)
            {
                await log.LogCommitDecisionAsync(Decision(i));
                if (i % 3 != 0)
                {
                    log.LogEnd(Id(i));
                }
            }
        }

        var segments = _dir.Segments();
        Assert.True(Path.GetFileName(segments[^1]) != WalFormat.SegmentFileName(1), "the log rolled over");
        File.Delete(segments[^1]);
        File.WriteAllBytes(Path.Combine(_dir.Path, WalFormat.SegmentFileName(1)), []); // and an empty first one, as if left over

        await using var reopened = _dir.CreateLog();
        var error = await Assert.ThrowsAsync<TransactionLogCorruptedException>(() => reopened.OpenAsync(CancellationToken.None).AsTask());
        Assert.Contains(Path.GetFileName(segments[^1]), error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Item17_a_hole_in_the_unsynced_last_batch_is_a_torn_tail_even_when_valid_records_follow_it(bool holeAtBatchStart)
    {
        var fileSystem = new FaultyWalFileSystem();
        long batchStart;
        long batchEnd;
        await using (var log = _dir.CreateLog(fileSystem))
        {
            await log.OpenAsync(CancellationToken.None);
            for (ulong i = 1; i <= 5; i++)
            {
                await log.LogCommitDecisionAsync(Decision(i));
            }

            // Decision 6 is written and its fsync held; 7, 8 and 9 queue meanwhile and form the next batch.
            var gate = new SemaphoreSlim(0);
            fileSystem.FlushGate = gate;
            var sixth = log.LogCommitDecisionAsync(BigDecision(6)).AsTask();
            await fileSystem.FlushEntered.WaitAsync();
            batchStart = new FileInfo(_dir.LastSegment()).Length;
            var rest = new[] { BigDecision(7), BigDecision(8), BigDecision(9) }.Select(d => log.LogCommitDecisionAsync(d).AsTask()).ToArray();
            gate.Release();
            await sixth;
            await fileSystem.FlushEntered.WaitAsync(); // 7-9 written with one write; its fsync has not returned
            batchEnd = new FileInfo(_dir.LastSegment()).Length;
            fileSystem.FlushGate = null;
            gate.Release(); // the test forges the power-loss image from the bytes written so far
            await Task.WhenAll(rest);
        }

        var segment = _dir.LastSegment();
        var bytes = File.ReadAllBytes(segment)[..(int)batchEnd];
        Assert.True(batchEnd - batchStart > 3 * 2048, "7, 8 and 9 were written as one batch");
        if (holeAtBatchStart)
        {
            // The first page of the batch never reached the disk (it reads back as zeros).
            var end = (batchStart / 4096 + 1) * 4096;
            Array.Clear(bytes, (int)batchStart, (int)(end - batchStart));
        }
        else
        {
            // A page in the middle of the batch never reached the disk; the pages after it did.
            var page = (batchStart / 4096 + 1) * 4096;
            Assert.True(page + 4096 < batchEnd - 64);
            Array.Clear(bytes, (int)page, 4096);
        }

        File.WriteAllBytes(segment, bytes);

        await using (var log = _dir.CreateLog())
        {
            var state = await log.OpenAsync(CancellationToken.None);
            Assert.Contains("Truncated", Assert.Single(state.Warnings), StringComparison.Ordinal);
            Assert.Equal(Range(1, 6).ToArray(), state.PendingDecisions.Select(d => d.TransactionId.Sequence).Order().ToArray());
        }
    }

    [Fact]
    public async Task Item17_user_bytes_that_form_a_valid_batch_inside_a_record_are_never_taken_for_one()
    {
        // Recovery data holding exact images of sealed batches (as a hostile or unlucky participant could send).
        using var image = new WalFrameBuffer();
        image.WriteFrame((byte)TransactionRecordType.Epoch, 99UL, TransactionRecordCodec.EpochLength, TransactionRecordCodec.EpochEncoder);
        image.SealBatch(0);
        var data = Enumerable.Repeat(image.WrittenSpan.ToArray(), 40).SelectMany(b => b).ToArray();
        var decision = new CommitDecision(Id(4), DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000), [new LoggedBranch("rm-0", Xid.ForBranch(Id(4), 0), data)]);
        await using (var log = _dir.CreateLog())
        {
            await log.OpenAsync(CancellationToken.None);
            for (ulong i = 1; i <= 3; i++)
            {
                await log.LogCommitDecisionAsync(Decision(i));
            }

            await log.LogCommitDecisionAsync(decision);
        }

        // The crash cut decision 4's batch short: the fake batches in its payload are followed by nothing real.
        var segment = _dir.LastSegment();
        var length = new FileInfo(segment).Length;
        using (var file = File.Open(segment, FileMode.Open))
        {
            file.SetLength(length - 7);
        }

        await using (var reopened = _dir.CreateLog())
        {
            var state = await reopened.OpenAsync(CancellationToken.None);
            Assert.Contains("Truncated", Assert.Single(state.Warnings), StringComparison.Ordinal);
            AssertPending(state, Range(1, 3));
            Assert.Equal(2UL, state.Epoch); // the epoch 99 inside the payload was never read as a record
        }
    }

    [Fact]
    public async Task Item11_a_log_written_under_another_node_id_refuses_to_start_naming_both_ids()
    {
        await using (var first = new TransactionCoordinator(new TransactionCoordinatorOptions { NodeId = "node-a" }, _dir.CreateLog()))
        {
            await first.StartAsync();
        }

        await using (var renamed = new TransactionCoordinator(new TransactionCoordinatorOptions { NodeId = "node-b" }, _dir.CreateLog()))
        {
            var error = await Assert.ThrowsAsync<TransactionLogNodeMismatchException>(() => renamed.StartAsync());
            Assert.Contains("node-a", error.Message, StringComparison.Ordinal);
            Assert.Contains("node-b", error.Message, StringComparison.Ordinal);
        }

        await using (var same = new TransactionCoordinator(new TransactionCoordinatorOptions { NodeId = "node-a" }, _dir.CreateLog()))
        {
            await same.StartAsync();
            Assert.Equal(2UL, same.Epoch);
        }
    }

    private static CommitDecision BigDecision(ulong sequence)
    {
        var data = new byte[3000];
        new Random((int)sequence).NextBytes(data);
        return new CommitDecision(Id(sequence), DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000), [new LoggedBranch("rm-0", Xid.ForBranch(Id(sequence), 0), data)]);
    }
}
