using Microsoft.Win32.SafeHandles;
using TwoPC.Durability;
using TwoPC.Participants;
using TwoPC.Protocol;
using TwoPC.Transactions;
using TwoPC.Wal;

namespace TwoPC.Tests.Wal;

/// <summary>A fresh directory under the temp path, deleted afterwards.</summary>
internal sealed class TempLogDirectory : IDisposable
{
    public TempLogDirectory()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "twopc-wal-tests", Guid.NewGuid().ToString("N"));
    }

    /// <summary>The log directory (not created: the log creates it).</summary>
    public string Path { get; }

    public string[] Segments() =>
        Directory.Exists(Path) ? Directory.GetFiles(Path, "wal-*.seg").OrderBy(p => p, StringComparer.Ordinal).ToArray() : [];

    public string LastSegment() => Segments()[^1];

    /// <summary>Opens a log here, forces decisions <paramref name="from"/> to <paramref name="to"/>, and closes it.</summary>
    public async Task WriteDecisionsAsync(ulong from, ulong to)
    {
        await using var log = CreateLog();
        await log.OpenAsync(CancellationToken.None);
        for (var i = from; i <= to; i++)
        {
            await log.LogCommitDecisionAsync(Records.Decision(i));
        }
    }

    public FileTransactionLog CreateLog(long segmentSize = FileTransactionLogOptions.DefaultSegmentSize) =>
        new(new FileTransactionLogOptions { Directory = Path, SegmentSize = segmentSize });

    public FileTransactionLog CreateLog(IWalFileSystem fileSystem, long segmentSize = FileTransactionLogOptions.DefaultSegmentSize) =>
        new(new FileTransactionLogOptions { Directory = Path, SegmentSize = segmentSize }, fileSystem);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }
}

/// <summary>The real file system with switches that make writes, fsyncs or directory fsyncs fail, and a gate that holds fsync.</summary>
internal sealed class FaultyWalFileSystem : IWalFileSystem
{
    private readonly PhysicalWalFileSystem _inner = PhysicalWalFileSystem.Instance;
    private int _writes;

    public volatile bool FailWrites;
    public volatile bool FailFlushes;
    public volatile bool FailDirectoryFlushes;

    /// <summary>When set, every fsync signals <see cref="FlushEntered"/> and waits for this gate.</summary>
    public SemaphoreSlim? FlushGate;

    public SemaphoreSlim FlushEntered { get; } = new(0);

    public int Writes => Volatile.Read(ref _writes);

    public void CreateDirectory(string path) => _inner.CreateDirectory(path);

    public IDisposable? TryLockDirectory(string directory) => _inner.TryLockDirectory(directory);

    public IReadOnlyList<string> ListFiles(string directory, string searchPattern) => _inner.ListFiles(directory, searchPattern);

    public SafeFileHandle OpenFile(string path, FileMode mode) => _inner.OpenFile(path, mode);

    public long GetLength(SafeFileHandle file) => _inner.GetLength(file);

    public int Read(SafeFileHandle file, Span<byte> buffer, long offset) => _inner.Read(file, buffer, offset);

    public void Write(SafeFileHandle file, ReadOnlySpan<byte> data, long offset)
    {
        if (FailWrites)
        {
            // A partial write before the error, as a full disk produces.
            _inner.Write(file, data[..(data.Length / 2)], offset);
            throw new IOException("No space left on device (injected)");
        }

        Interlocked.Increment(ref _writes);
        _inner.Write(file, data, offset);
    }

    public void FlushToDisk(SafeFileHandle file)
    {
        if (FlushGate is { } gate)
        {
            FlushEntered.Release();
            gate.Wait();
        }

        if (FailFlushes)
        {
            throw new IOException("Input/output error (injected fsync failure)");
        }

        _inner.FlushToDisk(file);
    }

    public void SetLength(SafeFileHandle file, long length) => _inner.SetLength(file, length);

    public void DeleteFile(string path) => _inner.DeleteFile(path);

    public void MoveFile(string source, string destination) => _inner.MoveFile(source, destination);

    public void FlushDirectory(string directory)
    {
        if (FailDirectoryFlushes)
        {
            throw new IOException("Input/output error (injected directory fsync failure)");
        }

        _inner.FlushDirectory(directory);
    }
}

/// <summary>Builds records and compares what the log gave back with what was logged.</summary>
internal static class Records
{
    public static readonly NodeId Node = NodeId.Parse("node-a");

    public static GlobalTransactionId Id(ulong sequence) => new(Node, 7, sequence);

    /// <summary>The sequences <paramref name="from"/> to <paramref name="to"/>, inclusive.</summary>
    public static IEnumerable<ulong> Range(ulong from, ulong to)
    {
        for (var i = from; i <= to; i++)
        {
            yield return i;
        }
    }

    public static CommitDecision Decision(ulong sequence, int branches = 2) =>
        new(
            Id(sequence),
            DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000 + (long)sequence),
            Enumerable.Range(0, branches)
                .Select(b => new LoggedBranch($"rm-{b}-\u00e9", Xid.ForBranch(Id(sequence), b), new byte[] { (byte)sequence, (byte)(sequence >> 8), (byte)b, 0xFF }))
                .ToArray());

    public static HeuristicRecord Heuristic(ulong sequence) =>
        new(
            Id(sequence),
            DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_100_000 + (long)sequence),
            OutcomeKind.HeuristicMixed,
            $"branch rm-1 rolled back on its own ({sequence})",
            [
                new HeuristicBranch("rm-0", Xid.ForBranch(Id(sequence), 0), BranchOutcome.Committed),
                new HeuristicBranch("rm-1", Xid.ForBranch(Id(sequence), 1), BranchOutcome.RolledBack),
                new HeuristicBranch("rm-2", Xid.ForBranch(Id(sequence), 2), null),
            ]);

    public static void AssertSame(CommitDecision expected, CommitDecision actual)
    {
        Assert.Equal(expected.TransactionId, actual.TransactionId);
        Assert.Equal(expected.DecidedAt.ToUnixTimeMilliseconds(), actual.DecidedAt.ToUnixTimeMilliseconds());
        Assert.Equal(expected.Branches.Count, actual.Branches.Count);
        for (var i = 0; i < expected.Branches.Count; i++)
        {
            Assert.Equal(expected.Branches[i].ResourceManager, actual.Branches[i].ResourceManager);
            Assert.Equal(expected.Branches[i].Xid, actual.Branches[i].Xid);
            Assert.Equal(expected.Branches[i].RecoveryData.ToArray(), actual.Branches[i].RecoveryData.ToArray());
        }
    }

    public static void AssertSame(HeuristicRecord expected, HeuristicRecord actual)
    {
        Assert.Equal(expected.TransactionId, actual.TransactionId);
        Assert.Equal(expected.RecordedAt.ToUnixTimeMilliseconds(), actual.RecordedAt.ToUnixTimeMilliseconds());
        Assert.Equal(expected.Kind, actual.Kind);
        Assert.Equal(expected.Reason, actual.Reason);
        Assert.Equal(expected.Branches, actual.Branches);
    }

    /// <summary>Asserts the pending decisions are exactly those with the given sequences, with their full contents.</summary>
    public static void AssertPending(LogRecoveryState state, IEnumerable<ulong> sequences)
    {
        var expected = sequences.Order().ToArray();
        Assert.Equal(expected, state.PendingDecisions.Select(d => d.TransactionId.Sequence).Order().ToArray());
        foreach (var decision in state.PendingDecisions)
        {
            AssertSame(Decision(decision.TransactionId.Sequence), decision);
        }
    }
}
