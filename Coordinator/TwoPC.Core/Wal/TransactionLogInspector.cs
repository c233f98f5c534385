using System.Globalization;
using TwoPC.Durability;

namespace TwoPC.Wal;

/// <summary>What kind of problem an inspection found, and so what recovery would do about it.</summary>
public enum LogProblemKind
{
    /// <summary>Data at the end of the current segment that was never acknowledged: recovery truncates it.</summary>
    TornTail,

    /// <summary>A file that holds nothing the log needs (an interrupted checkpoint or creation): recovery deletes it.</summary>
    Leftover,

    /// <summary>Damage recovery must not paper over, or a log that is not whole: recovery refuses to start.</summary>
    Corruption,
}

/// <summary>One problem in a log directory, where it is and what recovery would do about it.</summary>
/// <param name="Kind">Torn tail, leftover or corruption.</param>
/// <param name="Path">The file (or, for a missing file, the path it should have).</param>
/// <param name="Offset">Where in the file.</param>
/// <param name="DroppedBytes">What recovery would truncate or delete (0 for corruption).</param>
/// <param name="Description">What is wrong.</param>
public sealed record LogProblem(LogProblemKind Kind, string Path, long Offset, long DroppedBytes, string Description);

/// <summary>One segment file of a log directory.</summary>
/// <param name="Path">The file.</param>
/// <param name="Number">The number in its name.</param>
/// <param name="Size">Its length in bytes.</param>
/// <param name="IsCurrent">Whether the manifest names it as the log's current segment.</param>
/// <param name="HeaderOk">Whether its header verifies.</param>
/// <param name="HeaderProblem">What is wrong with the header, or <see langword="null"/>.</param>
/// <param name="Records">Records in its verified batches.</param>
/// <param name="FirstOffset">Offset of its first record, if any.</param>
/// <param name="LastOffset">Offset of its last record, if any.</param>
public sealed record LogSegmentInfo(string Path, ulong Number, long Size, bool IsCurrent, bool HeaderOk, string? HeaderProblem, int Records, long? FirstOffset, long? LastOffset);

/// <summary>One record of a verified batch, decoded for reading.</summary>
/// <param name="Segment">The segment's file name.</param>
/// <param name="Offset">The record's offset in the segment.</param>
/// <param name="Type">The record type's name.</param>
/// <param name="Gtrid">The global transaction id it is about, if any.</param>
/// <param name="Branches">Its branches (count and resource managers), if any.</param>
/// <param name="Detail">Anything else worth showing (an epoch, a time, a reason, or why it does not decode).</param>
public sealed record LogRecordInfo(string Segment, long Offset, string Type, string? Gtrid, string? Branches, string? Detail);

/// <summary>What <see cref="TransactionLogInspector"/> found in a log directory, judged exactly as recovery judges it.</summary>
public sealed class TransactionLogInspection
{
    internal TransactionLogInspection(string directory) => Directory = directory;

    /// <summary>The full path of the log directory.</summary>
    public string Directory { get; }

    /// <summary>The coordinator node the manifest records, or <see langword="null"/>.</summary>
    public string? NodeId { get; internal set; }

    /// <summary>The current segment the manifest names, or <see langword="null"/> without a readable manifest.</summary>
    public ulong? CurrentSegment { get; internal set; }

    /// <summary>Every segment file, in number order.</summary>
    public IReadOnlyList<LogSegmentInfo> Segments => SegmentList;

    /// <summary>Every record of every verified batch, in log order.</summary>
    public IReadOnlyList<LogRecordInfo> Records => RecordList;

    /// <summary>Every problem found; empty for a clean log.</summary>
    public IReadOnlyList<LogProblem> Problems => ProblemList;

    /// <summary>True when recovery would refuse to start.</summary>
    public bool RecoveryRefuses => ProblemList.Exists(p => p.Kind == LogProblemKind.Corruption);

    /// <summary>The epoch recovery would start (the largest on record + 1); 0 when it would refuse.</summary>
    public ulong NextEpoch { get; internal set; }

    /// <summary>The commit decisions recovery would re-drive (read up to any corruption).</summary>
    public IReadOnlyList<CommitDecision> PendingDecisions { get; internal set; } = [];

    /// <summary>The heuristic outcomes on record (read up to any corruption).</summary>
    public IReadOnlyList<HeuristicRecord> Heuristics { get; internal set; } = [];

    internal List<LogSegmentInfo> SegmentList { get; } = [];

    internal List<LogRecordInfo> RecordList { get; } = [];

    internal List<LogProblem> ProblemList { get; } = [];
}

/// <summary>
/// Reads a log directory offline and read-only, judging it with the code recovery uses (the manifest and
/// segment verdicts, the batch verifier and the replay of <see cref="FileTransactionLog"/>). It never writes,
/// truncates, deletes or locks anything, so it works while a coordinator has the log open.
/// </summary>
public static class TransactionLogInspector
{
    /// <summary>Inspects the log directory <paramref name="directory"/>.</summary>
    /// <exception cref="DirectoryNotFoundException">The directory does not exist.</exception>
    /// <exception cref="IOException">A file could not be read.</exception>
    public static TransactionLogInspection Inspect(string directory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        var fullPath = Path.GetFullPath(directory);
        if (!System.IO.Directory.Exists(fullPath))
        {
            throw new DirectoryNotFoundException(
                File.Exists(fullPath)
                    ? $"'{fullPath}' is a file, not a log directory."
                    : $"The log directory '{fullPath}' does not exist.");
        }

        var inspection = new TransactionLogInspection(fullPath);
        var manifestPath = Path.Combine(fullPath, WalFormat.ManifestFileName);
        var manifestBytes = File.Exists(manifestPath) ? ReadAll(manifestPath) : null;
        var segments = new List<(WalSegmentFile File, byte[] Data)>();
        foreach (var path in System.IO.Directory.EnumerateFiles(fullPath, WalFormat.SegmentSearchPattern))
        {
            if (WalFormat.TryParseSegmentFileName(Path.GetFileName(path), out var number))
            {
                var data = ReadAll(path);
                segments.Add((new WalSegmentFile(number, path, data.Length, data[..Math.Min(data.Length, WalFormat.SegmentHeaderSize)]), data));
            }
        }

        segments.Sort((a, b) => a.File.Number.CompareTo(b.File.Number));
        var verdict = WalDirectoryJudge.Judge(fullPath, manifestBytes, segments.ConvertAll(s => s.File));
        if (manifestBytes is not null && WalManifest.TryDecode(manifestBytes, out var manifest, out _))
        {
            inspection.NodeId = manifest!.NodeId;
            inspection.CurrentSegment = manifest.CurrentSegment;
        }

        if (verdict.Corruption is { } corruption)
        {
            inspection.ProblemList.Add(new LogProblem(LogProblemKind.Corruption, verdict.CorruptPath!, verdict.CorruptOffset, 0, corruption));
        }

        foreach (var leftover in verdict.Leftovers)
        {
            inspection.ProblemList.Add(new LogProblem(LogProblemKind.Leftover, leftover.Path, 0, leftover.Length, leftover.Reason));
        }

        var replay = new FileTransactionLog.Replay();
        foreach (var (file, data) in segments)
        {
            var isCurrent = verdict.Current?.Number == file.Number;
            InspectSegment(inspection, file, data, isCurrent, isCurrent ? replay : null);
        }

        if (replay.MaxEpoch == ulong.MaxValue)
        {
            inspection.ProblemList.Add(new LogProblem(LogProblemKind.Corruption, fullPath, 0, 0, "the log has reached the largest epoch"));
        }

        inspection.NextEpoch = inspection.RecoveryRefuses ? 0 : replay.MaxEpoch + 1;
        inspection.PendingDecisions = replay.Decisions.Values.OrderBy(d => d.TransactionId, FileTransactionLog.IdComparer.Instance).ToArray();
        inspection.Heuristics = replay.Heuristics.Values.OrderBy(h => h.TransactionId, FileTransactionLog.IdComparer.Instance).ToArray();
        return inspection;
    }

    /// <summary>Lists a segment's records; for the current segment also replays them and reports its verdict.</summary>
    private static void InspectSegment(TransactionLogInspection inspection, WalSegmentFile file, byte[] data, bool isCurrent, FileTransactionLog.Replay? replay)
    {
        var name = Path.GetFileName(file.Path);
        if (!WalFormat.TryReadSegmentHeader(data, out _, out _, out _, out var headerProblem))
        {
            inspection.SegmentList.Add(new LogSegmentInfo(file.Path, file.Number, data.Length, isCurrent, false, headerProblem, 0, null, null));
            return;
        }

        var count = 0;
        long? first = null;
        long? last = null;
        var decodeFailed = false;
        var end = WalSegmentReader.ReadBatches(data, (_, offset, recordType, payload) =>
        {
            count++;
            first ??= offset;
            last = offset;
            var record = Describe(name, offset, recordType, payload, out var decodeError);
            inspection.RecordList.Add(record);
            if (replay is null || decodeFailed)
            {
                return;
            }

            if (decodeError is not null)
            {
                // Recovery stops here, so the state stops here too.
                decodeFailed = true;
                inspection.ProblemList.Add(new LogProblem(LogProblemKind.Corruption, file.Path, offset, 0, $"a record of type {recordType} has a valid checksum but does not decode: {decodeError}"));
                return;
            }

            replay.Apply(recordType, payload);
        });

        inspection.SegmentList.Add(new LogSegmentInfo(file.Path, file.Number, data.Length, isCurrent, true, null, count, first, last));
        if (replay is null || decodeFailed || end.IsClean)
        {
            return;
        }

        inspection.ProblemList.Add(end.Damage == WalDamageKind.TornTail
            ? new LogProblem(LogProblemKind.TornTail, file.Path, end.Offset, data.Length - end.Offset, end.Problem!)
            : new LogProblem(LogProblemKind.Corruption, file.Path, end.Offset, 0, end.Problem!));
    }

    /// <summary>Reads a whole file without disturbing a coordinator that has it open.</summary>
    private static byte[] ReadAll(string path)
    {
        using var stream = new FileStream(path, new FileStreamOptions
        {
            Mode = FileMode.Open,
            Access = FileAccess.Read,
            Share = FileShare.ReadWrite | FileShare.Delete,
            BufferSize = 0,
        });
        if (stream.Length > Array.MaxLength)
        {
            throw new IOException($"'{path}' is {stream.Length} bytes, larger than any file this log writes.");
        }

        var data = new byte[stream.Length];
        stream.ReadExactly(data);
        return data;
    }

    private static LogRecordInfo Describe(string segment, long offset, byte recordType, ReadOnlySpan<byte> payload, out string? decodeError)
    {
        decodeError = null;
        try
        {
            switch ((TransactionRecordType)recordType)
            {
                case TransactionRecordType.Epoch:
                    return new LogRecordInfo(segment, offset, TypeName(recordType), null, null, $"epoch {TransactionRecordCodec.DecodeEpoch(payload)}");
                case TransactionRecordType.CommitDecision:
                    var decision = TransactionRecordCodec.DecodeCommitDecision(payload);
                    return new LogRecordInfo(segment, offset, TypeName(recordType), decision.TransactionId.ToString(), DescribeBranches(decision.Branches.Select(b => b.ResourceManager)), $"decided {FormatTime(decision.DecidedAt)}");
                case TransactionRecordType.Heuristic:
                    var heuristic = TransactionRecordCodec.DecodeHeuristic(payload);
                    return new LogRecordInfo(segment, offset, TypeName(recordType), heuristic.TransactionId.ToString(), DescribeBranches(heuristic.Branches.Select(b => b.ResourceManager)), $"{heuristic.Kind}: {heuristic.Reason}");
                case TransactionRecordType.End:
                    return new LogRecordInfo(segment, offset, TypeName(recordType), TransactionRecordCodec.DecodeEnd(payload).ToString(), null, null);
                default:
                    throw new InvalidDataException($"unknown record type {recordType}");
            }
        }
        catch (Exception ex) when (ex is FormatException or InvalidDataException or ArgumentException or OverflowException)
        {
            decodeError = ex.Message;
            return new LogRecordInfo(segment, offset, TypeName(recordType), null, null, $"does not decode: {ex.Message}");
        }
    }

    private static string DescribeBranches(IEnumerable<string> resourceManagers)
    {
        var names = resourceManagers.ToList();
        return names.Count == 0 ? "0" : $"{names.Count} ({string.Join(", ", names)})";
    }

    /// <summary>A time as the inspection shows it: UTC with milliseconds.</summary>
    public static string FormatTime(DateTimeOffset time) => time.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);

    private static string TypeName(byte recordType) => recordType switch
    {
        (byte)TransactionRecordType.Epoch => "Epoch",
        (byte)TransactionRecordType.CommitDecision => "CommitDecision",
        (byte)TransactionRecordType.Heuristic => "Heuristic",
        (byte)TransactionRecordType.End => "End",
        _ => $"type {recordType}",
    };
}
