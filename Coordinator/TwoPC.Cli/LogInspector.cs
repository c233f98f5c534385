using TwoPC.Durability;
using TwoPC.Wal;

namespace TwoPC.Cli;

/// <summary>One segment file as found on disk.</summary>
internal sealed record SegmentInfo(string Path, ulong Number, long Size, bool HeaderOk, string? HeaderProblem, int Records, int? FirstOffset, int? LastOffset);

/// <summary>One frame of a segment: a verified record, or the frame where verification stopped.</summary>
internal sealed record RecordInfo(string Segment, int Offset, string Type, bool ChecksumOk, string? Gtrid, string? Branches, string? Detail);

/// <summary>What kind of damage a problem is.</summary>
internal enum ProblemKind
{
    /// <summary>Bad data at the end of the last segment: recovery truncates it.</summary>
    TornTail,

    /// <summary>The last segment's header is torn and nothing valid follows: recovery deletes the file.</summary>
    TornSegment,

    /// <summary>Damage recovery must not paper over: it refuses to start.</summary>
    Corruption,
}

/// <summary>One problem in the log, with where it is and what recovery would do about it.</summary>
internal sealed record LogProblem(ProblemKind Kind, string Path, long Offset, long DroppedBytes, string Description);

/// <summary>Everything the inspector found in a log directory.</summary>
internal sealed class LogInspection
{
    public required string Directory { get; init; }

    public List<SegmentInfo> Segments { get; } = [];

    public List<RecordInfo> Records { get; } = [];

    public List<LogProblem> Problems { get; } = [];

    /// <summary>The epoch recovery would start (max + 1).</summary>
    public ulong NextEpoch { get; set; }

    public IReadOnlyList<CommitDecision> PendingDecisions { get; set; } = [];

    public IReadOnlyList<HeuristicRecord> Heuristics { get; set; } = [];

    public bool RecoveryRefuses => Problems.Exists(p => p.Kind == ProblemKind.Corruption);

    public int ExitCode =>
        RecoveryRefuses ? Program.ExitCorrupt : Problems.Count > 0 ? Program.ExitTornTail : Program.ExitClean;
}

/// <summary>
/// Reads a log directory offline and read-only, judging it with the same code recovery uses
/// (<see cref="WalFormat"/>, <see cref="WalSegmentReader"/>, <see cref="TransactionRecordCodec"/> and the
/// replay of <see cref="FileTransactionLog"/>). It never writes, truncates, deletes or locks anything.
/// </summary>
internal static class LogInspector
{
    public static LogInspection Inspect(string directory)
    {
        var fullPath = Path.GetFullPath(directory);
        if (!System.IO.Directory.Exists(fullPath))
        {
            throw new DirectoryNotFoundException(
                File.Exists(fullPath)
                    ? $"'{fullPath}' is a file, not a log directory."
                    : $"The log directory '{fullPath}' does not exist.");
        }

        var inspection = new LogInspection { Directory = fullPath };
        var replay = new FileTransactionLog.Replay();
        var segments = ListSegments(fullPath);
        for (var i = 0; i < segments.Count; i++)
        {
            InspectSegment(inspection, replay, segments[i].Path, segments[i].Number, isLast: i == segments.Count - 1);
        }

        if (replay.MaxEpoch == ulong.MaxValue)
        {
            inspection.Problems.Add(new LogProblem(ProblemKind.Corruption, fullPath, 0, 0, "the log has reached the largest epoch"));
        }
        else
        {
            inspection.NextEpoch = replay.MaxEpoch + 1;
        }

        inspection.PendingDecisions = replay.Decisions.Values.OrderBy(d => d.TransactionId, FileTransactionLog.IdComparer.Instance).ToArray();
        inspection.Heuristics = replay.Heuristics.Values.OrderBy(h => h.TransactionId, FileTransactionLog.IdComparer.Instance).ToArray();
        return inspection;
    }

    private static List<(ulong Number, string Path)> ListSegments(string directory)
    {
        var segments = new List<(ulong Number, string Path)>();
        foreach (var path in System.IO.Directory.EnumerateFiles(directory, WalFormat.SegmentSearchPattern))
        {
            if (WalFormat.TryParseSegmentFileName(Path.GetFileName(path), out var number))
            {
                segments.Add((number, path));
            }
        }

        segments.Sort((a, b) => a.Number.CompareTo(b.Number));
        return segments;
    }

    private static void InspectSegment(LogInspection inspection, FileTransactionLog.Replay replay, string path, ulong number, bool isLast)
    {
        var name = Path.GetFileName(path);
        var data = ReadAll(path, out var size);
        if (data is null)
        {
            inspection.Segments.Add(new SegmentInfo(path, number, size, false, "too large to read", 0, null, null));
            inspection.Problems.Add(new LogProblem(ProblemKind.Corruption, path, 0, 0, $"the segment is {size} bytes, larger than any segment this log writes"));
            return;
        }

        if (!WalFormat.TryReadSegmentHeader(data, out var headerNumber, out var headerProblem))
        {
            inspection.Segments.Add(new SegmentInfo(path, number, size, false, headerProblem, 0, null, null));
            if (!isLast)
            {
                inspection.Problems.Add(new LogProblem(ProblemKind.Corruption, path, 0, 0, $"{headerProblem} (in a segment that is not the last)"));
                return;
            }

            var valid = WalSegmentReader.FindValidFrame(data, 0);
            inspection.Problems.Add(valid >= 0
                ? new LogProblem(ProblemKind.Corruption, path, 0, 0, $"{headerProblem}, yet a valid record follows at offset {valid}")
                : new LogProblem(ProblemKind.TornSegment, path, 0, data.Length, $"{headerProblem}; the segment was being created when the process stopped"));
            return;
        }

        if (headerNumber != number)
        {
            inspection.Segments.Add(new SegmentInfo(path, number, size, false, $"the header says segment {headerNumber}", 0, null, null));
            inspection.Problems.Add(new LogProblem(ProblemKind.Corruption, path, 8, 0, $"the header says segment {headerNumber}"));
            return;
        }

        var count = 0;
        int? first = null;
        int? last = null;
        void OnFrame(int offset, byte recordType, ReadOnlySpan<byte> payload)
        {
            count++;
            first ??= offset;
            last = offset;
            inspection.Records.Add(Describe(name, offset, recordType, payload, out var decodeError));
            if (decodeError is not null)
            {
                inspection.Problems.Add(new LogProblem(ProblemKind.Corruption, path, offset, 0, $"a record of type {recordType} has a valid checksum but does not decode: {decodeError}"));
            }
            else if (!inspection.RecoveryRefuses)
            {
                // Same replay as recovery; recovery stops at corruption, so the state stops there too.
                replay.Apply(recordType, payload);
            }
        }

        var end = WalSegmentReader.ReadFrames(data, OnFrame);
        var firstDamage = true;
        while (end.Problem is { } problem)
        {
            var type = end.Offset + 4 < data.Length ? TypeName(data[end.Offset + 4]) : "?";
            inspection.Records.Add(new RecordInfo(name, end.Offset, type, false, null, null, problem));
            var next = WalSegmentReader.FindValidFrame(data, end.Offset + 1);
            if (firstDamage)
            {
                // Recovery judges only the first damage of a segment; later ones are listed as records.
                firstDamage = false;
                inspection.Problems.Add(
                    !isLast ? new LogProblem(ProblemKind.Corruption, path, end.Offset, 0, $"{problem} (in a segment that is not the last, so not a torn write)")
                    : next >= 0 ? new LogProblem(ProblemKind.Corruption, path, end.Offset, 0, $"{problem}, and a valid record follows at offset {next}")
                    : new LogProblem(ProblemKind.TornTail, path, end.Offset, data.Length - end.Offset, problem));
            }

            if (next < 0)
            {
                break;
            }

            // Past the damage, for the listing only: recovery would have refused already.
            end = WalSegmentReader.ReadFrames(data, OnFrame, (int)next);
        }

        inspection.Segments.Add(new SegmentInfo(path, number, size, true, null, count, first, last));
    }

    /// <summary>Reads a whole segment without disturbing a coordinator that has it open; null when too large.</summary>
    private static byte[]? ReadAll(string path, out long size)
    {
        using var stream = new FileStream(path, new FileStreamOptions
        {
            Mode = FileMode.Open,
            Access = FileAccess.Read,
            Share = FileShare.ReadWrite | FileShare.Delete,
            BufferSize = 0,
        });
        size = stream.Length;
        if (size > Array.MaxLength)
        {
            return null;
        }

        var data = new byte[size];
        stream.ReadExactly(data);
        return data;
    }

    private static RecordInfo Describe(string segment, int offset, byte recordType, ReadOnlySpan<byte> payload, out string? decodeError)
    {
        decodeError = null;
        try
        {
            switch ((TransactionRecordType)recordType)
            {
                case TransactionRecordType.Epoch:
                    return new RecordInfo(segment, offset, TypeName(recordType), true, null, null, $"epoch {TransactionRecordCodec.DecodeEpoch(payload)}");
                case TransactionRecordType.CommitDecision:
                    var decision = TransactionRecordCodec.DecodeCommitDecision(payload);
                    return new RecordInfo(segment, offset, TypeName(recordType), true, decision.TransactionId.ToString(), DescribeBranches(decision.Branches.Select(b => b.ResourceManager)), $"decided {Time(decision.DecidedAt)}");
                case TransactionRecordType.Heuristic:
                    var heuristic = TransactionRecordCodec.DecodeHeuristic(payload);
                    return new RecordInfo(segment, offset, TypeName(recordType), true, heuristic.TransactionId.ToString(), DescribeBranches(heuristic.Branches.Select(b => b.ResourceManager)), $"{heuristic.Kind}: {heuristic.Reason}");
                case TransactionRecordType.End:
                    return new RecordInfo(segment, offset, TypeName(recordType), true, TransactionRecordCodec.DecodeEnd(payload).ToString(), null, null);
                default:
                    throw new InvalidDataException($"unknown record type {recordType}");
            }
        }
        catch (Exception ex) when (ex is FormatException or InvalidDataException or ArgumentException or OverflowException)
        {
            decodeError = ex.Message;
            return new RecordInfo(segment, offset, TypeName(recordType), true, null, null, $"does not decode: {ex.Message}");
        }
    }

    private static string DescribeBranches(IEnumerable<string> resourceManagers)
    {
        var names = resourceManagers.ToList();
        return names.Count == 0 ? "0" : $"{names.Count} ({string.Join(", ", names)})";
    }

    internal static string Time(DateTimeOffset time) => time.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss.fff'Z'", System.Globalization.CultureInfo.InvariantCulture);

    internal static string TypeName(byte recordType) => recordType switch
    {
        (byte)TransactionRecordType.Epoch => "Epoch",
        (byte)TransactionRecordType.CommitDecision => "CommitDecision",
        (byte)TransactionRecordType.Heuristic => "Heuristic",
        (byte)TransactionRecordType.End => "End",
        _ => $"type {recordType}",
    };
}
