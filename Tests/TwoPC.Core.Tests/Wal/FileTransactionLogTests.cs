using TwoPC.Durability;
using TwoPC.Wal;
using static TwoPC.Tests.Wal.Records;

namespace TwoPC.Tests.Wal;

public sealed class FileTransactionLogTests : IDisposable
{
    private readonly TempLogDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task Empty_directory_is_created_and_starts_at_epoch_one()
    {
        await using var log = _dir.CreateLog();
        var state = await log.OpenAsync(CancellationToken.None);

        Assert.Equal(1UL, state.Epoch);
        Assert.Empty(state.PendingDecisions);
        Assert.Empty(state.Heuristics);
        Assert.Empty(state.Warnings);
        Assert.Single(_dir.Segments());
        Assert.True(File.Exists(Path.Combine(_dir.Path, "LOCK")));
    }

    [Fact]
    public async Task Decisions_heuristics_and_ends_round_trip_and_epochs_increase()
    {
        await using (var log = _dir.CreateLog())
        {
            Assert.Equal(1UL, (await log.OpenAsync(CancellationToken.None)).Epoch);
            for (ulong i = 1; i <= 10; i++)
            {
                await log.LogCommitDecisionAsync(Decision(i, branches: (int)(i % 4)));
            }

            await log.LogHeuristicAsync(Heuristic(100));
            await log.LogHeuristicAsync(Heuristic(101));
            log.LogEnd(Id(2));
            log.LogEnd(Id(5));
            log.LogEnd(Id(101));
            log.LogEnd(Id(999)); // an END for an unknown transaction is harmless
        }

        await using (var log = _dir.CreateLog())
        {
            var state = await log.OpenAsync(CancellationToken.None);
            Assert.Equal(2UL, state.Epoch);
            Assert.Empty(state.Warnings);
            Assert.Equal(new ulong[] { 1, 3, 4, 6, 7, 8, 9, 10 }, state.PendingDecisions.Select(d => d.TransactionId.Sequence).ToArray());
            foreach (var decision in state.PendingDecisions)
            {
                AssertSame(Decision(decision.TransactionId.Sequence, branches: (int)(decision.TransactionId.Sequence % 4)), decision);
            }

            AssertSame(Heuristic(100), Assert.Single(state.Heuristics));
            log.LogEnd(Id(100));
            log.LogEnd(Id(1));
        }

        await using (var log = _dir.CreateLog())
        {
            var state = await log.OpenAsync(CancellationToken.None);
            Assert.Equal(3UL, state.Epoch);
            Assert.Empty(state.Heuristics);
            Assert.Equal(new ulong[] { 3, 4, 6, 7, 8, 9, 10 }, state.PendingDecisions.Select(d => d.TransactionId.Sequence).ToArray());
        }
    }

    [Fact]
    public async Task Concurrent_appenders_are_all_released_and_all_durable()
    {
        const int Committers = 64;
        const int PerCommitter = 40;
        await using (var log = _dir.CreateLog())
        {
            await log.OpenAsync(CancellationToken.None);
            await Task.WhenAll(Enumerable.Range(0, Committers).Select(c => Task.Run(async () =>
            {
                for (var i = 0; i < PerCommitter; i++)
                {
                    var sequence = (ulong)(c * PerCommitter + i + 1);
                    await log.LogCommitDecisionAsync(Decision(sequence));
                    if (sequence % 2 == 0)
                    {
                        log.LogEnd(Id(sequence));
                    }
                }
            })));
        }

        await using (var log = _dir.CreateLog())
        {
            var state = await log.OpenAsync(CancellationToken.None);
            AssertPending(state, Enumerable.Range(1, Committers * PerCommitter).Select(i => (ulong)i).Where(s => s % 2 == 1));
        }
    }

    [Fact]
    public async Task Appends_during_a_flush_form_the_next_batch_and_are_released_together()
    {
        var fileSystem = new FaultyWalFileSystem();
        await using var log = _dir.CreateLog(fileSystem);
        await log.OpenAsync(CancellationToken.None);
        var writesBefore = fileSystem.Writes;

        var gate = new SemaphoreSlim(0);
        fileSystem.FlushGate = gate;
        var first = log.LogCommitDecisionAsync(Decision(1)).AsTask();
        Assert.True(await fileSystem.FlushEntered.WaitAsync(TimeSpan.FromSeconds(30)), "the flusher never reached fsync"); // the flusher is inside the fsync of decision 1
        var next = Enumerable.Range(2, 20).Select(i => log.LogCommitDecisionAsync(Decision((ulong)i)).AsTask()).ToArray();
        log.LogEnd(Id(1));
        Assert.False(first.IsCompleted);
        Assert.DoesNotContain(next, t => t.IsCompleted);

        fileSystem.FlushGate = null;
        gate.Release();
        await first;
        await Task.WhenAll(next);

        // Decision 1 was one write; the 20 decisions and the END that queued behind it were one more.
        Assert.Equal(writesBefore + 2, fileSystem.Writes);
    }

    [Fact]
    public async Task Tiny_segments_roll_over_and_keep_every_pending_decision()
    {
        await using (var log = _dir.CreateLog(segmentSize: FileTransactionLogOptions.MinimumSegmentSize))
        {
            await log.OpenAsync(CancellationToken.None);
            for (ulong i = 1; i <= 300; i++)
            {
                await log.LogCommitDecisionAsync(Decision(i));
            }
        }

        var segments = _dir.Segments();
        Assert.True(Path.GetFileName(segments[^1]).CompareTo("wal-0000000000000002.seg") >= 0, "the log never rolled over");
        Assert.Single(segments); // older segments are deleted once their records are copied forward

        await using (var log = _dir.CreateLog(segmentSize: FileTransactionLogOptions.MinimumSegmentSize))
        {
            var state = await log.OpenAsync(CancellationToken.None);
            AssertPending(state, Enumerable.Range(1, 300).Select(i => (ulong)i));
            Assert.Equal(2UL, state.Epoch);
        }
    }

    [Fact]
    public async Task Steady_decision_and_end_load_keeps_disk_use_bounded_and_pending_decisions_survive()
    {
        const int SegmentSize = 8 * 1024;
        const int Committers = 16;
        const int PerCommitter = 150;
        var kept = new List<ulong>();
        var maxFiles = 0;
        long maxBytes = 0;
        await using (var log = _dir.CreateLog(segmentSize: SegmentSize))
        {
            await log.OpenAsync(CancellationToken.None);
            await Task.WhenAll(Enumerable.Range(0, Committers).Select(c => Task.Run(async () =>
            {
                for (var i = 0; i < PerCommitter; i++)
                {
                    var sequence = (ulong)(c * PerCommitter + i + 1);
                    await log.LogCommitDecisionAsync(Decision(sequence));
                    if (sequence % 97 == 0)
                    {
                        lock (kept)
                        {
                            kept.Add(sequence); // stays pending: copied forward by every checkpoint
                        }
                    }
                    else
                    {
                        log.LogEnd(Id(sequence));
                    }

                    if (c == 0)
                    {
                        var files = _dir.Segments().Select(f => new FileInfo(f)).Where(f => f.Exists).ToArray();
                        maxFiles = Math.Max(maxFiles, files.Length);
                        maxBytes = Math.Max(maxBytes, files.Sum(f => f.Exists ? f.Length : 0));
                    }
                }
            })));
        }

        // 2,400 decisions of ~200 bytes plus ENDs would be ~600 KB without compaction.
        Assert.InRange(maxFiles, 1, 3);
        Assert.InRange(maxBytes, 1, 4 * SegmentSize);
        Assert.True(Path.GetFileName(_dir.LastSegment()).CompareTo("wal-0000000000000020.seg") > 0, "expected many rollovers");

        await using (var log = _dir.CreateLog(segmentSize: SegmentSize))
        {
            var state = await log.OpenAsync(CancellationToken.None);
            Assert.Equal(2UL, state.Epoch); // epoch 1 lives only in checkpoint copies by now
            Assert.NotEmpty(kept);
            AssertPending(state, kept);
        }
    }

    [Fact]
    public async Task Second_log_on_the_same_directory_fails_naming_the_directory()
    {
        await using var first = _dir.CreateLog();
        await first.OpenAsync(CancellationToken.None);

        await using (var second = _dir.CreateLog())
        {
            var error = await Assert.ThrowsAsync<TransactionLogLockedException>(() => second.OpenAsync(CancellationToken.None).AsTask());
            Assert.Contains(_dir.Path, error.Message, StringComparison.Ordinal);
            Assert.Contains("another coordinator", error.Message, StringComparison.Ordinal);
            Assert.Equal(_dir.Path, error.Directory);
        }

        await first.DisposeAsync();
        await using var third = _dir.CreateLog();
        Assert.Equal(2UL, (await third.OpenAsync(CancellationToken.None)).Epoch);
    }

    [Fact]
    public async Task Dispose_is_idempotent_and_later_calls_throw()
    {
        var log = _dir.CreateLog();
        await log.OpenAsync(CancellationToken.None);
        log.LogEnd(Id(1));
        await log.DisposeAsync();
        await log.DisposeAsync();
        Assert.Throws<ObjectDisposedException>(() => log.LogEnd(Id(2)));
    }

    [Fact]
    public void Options_are_validated()
    {
        Assert.Throws<ArgumentException>(() => new FileTransactionLog(new FileTransactionLogOptions()));
        Assert.Throws<ArgumentOutOfRangeException>(() => new FileTransactionLog(new FileTransactionLogOptions { Directory = _dir.Path, SegmentSize = 4095 }));
    }
}
