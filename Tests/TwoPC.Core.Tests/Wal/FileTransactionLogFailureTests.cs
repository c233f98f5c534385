using TwoPC.Durability;
using TwoPC.Wal;
using static TwoPC.Tests.Wal.Records;

namespace TwoPC.Tests.Wal;

public sealed class FileTransactionLogFailureTests : IDisposable
{
    private readonly TempLogDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    public enum Fault
    {
        Fsync,
        Write,
        RolloverDirectoryFsync,
    }

    [Theory]
    [InlineData(Fault.Fsync)]
    [InlineData(Fault.Write)]
    [InlineData(Fault.RolloverDirectoryFsync)]
    public async Task IO_error_stops_the_log_and_everything_acknowledged_before_survives(Fault fault)
    {
        var fileSystem = new FaultyWalFileSystem();
        var log = _dir.CreateLog(fileSystem, segmentSize: FileTransactionLogOptions.MinimumSegmentSize);
        await log.OpenAsync(CancellationToken.None);
        for (ulong i = 1; i <= 5; i++)
        {
            await log.LogCommitDecisionAsync(Decision(i));
        }

        log.LogEnd(Id(3));
        Assert.Null(log.Failure);

        switch (fault)
        {
            case Fault.Fsync:
                fileSystem.FailFlushes = true;
                break;
            case Fault.Write:
                fileSystem.FailWrites = true;
                break;
            case Fault.RolloverDirectoryFsync:
                fileSystem.FailDirectoryFlushes = true;
                break;
        }

        // With 4 KiB segments, a directory fsync failure shows up at the next rollover.
        ulong failedAt = 0;
        TransactionLogFailedException? error = null;
        for (ulong i = 6; i <= 200 && error is null; i++)
        {
            try
            {
                await log.LogCommitDecisionAsync(Decision(i));
            }
            catch (TransactionLogFailedException ex)
            {
                error = ex;
                failedAt = i;
            }
        }

        Assert.NotNull(error);
        Assert.IsType<IOException>(error.InnerException);
        Assert.Contains("injected", error.InnerException.Message, StringComparison.Ordinal);
        Assert.NotNull(log.Failure);
        Assert.Same(error, log.Failure);

        // Every later call fails at once, without touching the disk.
        var later = log.LogCommitDecisionAsync(Decision(1000));
        Assert.True(later.IsCompleted);
        var laterError = await Assert.ThrowsAsync<TransactionLogFailedException>(() => later.AsTask());
        Assert.IsType<IOException>(laterError.InnerException);
        await Assert.ThrowsAsync<TransactionLogFailedException>(() => log.LogHeuristicAsync(Heuristic(1001)).AsTask());
        Assert.Throws<TransactionLogFailedException>(() => log.LogEnd(Id(1)));
        await log.DisposeAsync();

        await using var reopened = _dir.CreateLog(segmentSize: FileTransactionLogOptions.MinimumSegmentSize);
        var state = await reopened.OpenAsync(CancellationToken.None);
        var pending = state.PendingDecisions.Select(d => d.TransactionId.Sequence).ToHashSet();
        // Acknowledged: 1..failedAt-1 except 3 (ended). The failed one may or may not have made it, and so
        // may END(3): it is never waited for, and a batch is all or nothing, so when it shared the failed
        // batch it was lost with it (recovery then repeats an idempotent commit).
        var acknowledged = Enumerable.Range(1, (int)failedAt - 1).Select(i => (ulong)i).Where(i => i != 3).ToArray();
        Assert.Superset(acknowledged.ToHashSet(), pending);
        Assert.Subset(acknowledged.Append(failedAt).Append(3UL).ToHashSet(), pending);
        Assert.DoesNotContain(1000UL, pending);
        foreach (var decision in state.PendingDecisions)
        {
            AssertSame(Decision(decision.TransactionId.Sequence), decision);
        }
    }

    [Fact]
    public async Task Waiting_appenders_of_the_failed_batch_and_the_next_one_all_fail()
    {
        var fileSystem = new FaultyWalFileSystem();
        await using var log = _dir.CreateLog(fileSystem);
        await log.OpenAsync(CancellationToken.None);

        var gate = new SemaphoreSlim(0);
        fileSystem.FlushGate = gate;
        var first = log.LogCommitDecisionAsync(Decision(1)).AsTask();
        Assert.True(await fileSystem.FlushEntered.WaitAsync(TimeSpan.FromSeconds(30)), "the flusher never reached fsync");
        var queued = Enumerable.Range(2, 10).Select(i => log.LogCommitDecisionAsync(Decision((ulong)i)).AsTask()).ToArray();
        fileSystem.FailFlushes = true;
        fileSystem.FlushGate = null;
        gate.Release();

        await Assert.ThrowsAsync<TransactionLogFailedException>(() => first);
        foreach (var task in queued)
        {
            await Assert.ThrowsAsync<TransactionLogFailedException>(() => task);
        }
    }
}
