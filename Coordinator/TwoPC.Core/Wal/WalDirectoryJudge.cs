namespace TwoPC.Wal;

/// <summary>A segment file as found in a log directory: its number, path, length and first bytes (up to a header).</summary>
internal sealed record WalSegmentFile(ulong Number, string Path, long Length, byte[] Head);

/// <summary>A file recovery removes because it holds nothing the log needs, and why.</summary>
internal sealed record WalLeftover(string Path, long Length, string Reason);

/// <summary>
/// The verdict on a log directory as a whole, before any record is read: a new log, an existing log and
/// its current segment, or corruption. <see cref="Leftovers"/> are safe to delete (and recovery deletes them).
/// </summary>
internal sealed record WalDirectoryVerdict(
    WalManifest? Manifest,
    WalSegmentFile? Current,
    IReadOnlyList<WalLeftover> Leftovers,
    string? CorruptPath,
    long CorruptOffset,
    string? Corruption)
{
    /// <summary>Nothing acknowledged was ever written here: recovery creates the log.</summary>
    public bool IsNew => Manifest is null && Corruption is null;
}

/// <summary>
/// Judges which files of a log directory make up the log (pure; shared by recovery and the inspector).
/// </summary>
/// <remarks>
/// The manifest names the log's one current segment. Segments numbered below it are left over from a
/// checkpoint whose deletions a crash interrupted (the current segment holds copies of all they kept);
/// segments above it were being created by a checkpoint the manifest never switched to. A missing current
/// segment, segments without a manifest (other than the first segment of a log whose creation a crash
/// interrupted), or a damaged manifest are corruption: the log is not whole, and starting would silently
/// forget decisions or reuse epochs.
/// </remarks>
internal static class WalDirectoryJudge
{
    public static WalDirectoryVerdict Judge(string directory, byte[]? manifestBytes, IReadOnlyList<WalSegmentFile> segments)
    {
        var manifestPath = System.IO.Path.Combine(directory, WalFormat.ManifestFileName);
        if (manifestBytes is null)
        {
            if (segments.Count == 0)
            {
                return new WalDirectoryVerdict(null, null, [], null, 0, null);
            }

            foreach (var segment in segments)
            {
                if (WalFormat.TryReadSegmentHeader(segment.Head, out _, out _, out var version, out _) is false && version is > 0 and not WalFormat.FormatVersion)
                {
                    return Corrupt(segment.Path, 4, WalFormat.UnsupportedVersion(version));
                }
            }

            // A crash while the log was first created: segment 1 holds at most its header and empty first
            // batch, and the manifest (written after it) never appeared. Nothing was ever acknowledged.
            if (segments is [{ Number: 1 } only] && only.Length <= WalFormat.SegmentHeaderSize + WalFormat.EmptyBatchSize)
            {
                return new WalDirectoryVerdict(null, null, [new WalLeftover(only.Path, only.Length, "the log's creation was interrupted before its manifest was written")], null, 0, null);
            }

            return Corrupt(manifestPath, 0, $"the manifest is missing but {segments.Count} segment file(s) exist ({string.Join(", ", segments.Select(s => System.IO.Path.GetFileName(s.Path)))}): the log's identity is lost");
        }

        if (!WalManifest.TryDecode(manifestBytes, out var manifest, out var problem))
        {
            return Corrupt(manifestPath, 0, problem);
        }

        var leftovers = new List<WalLeftover>();
        WalSegmentFile? current = null;
        foreach (var segment in segments)
        {
            if (segment.Number == manifest!.CurrentSegment)
            {
                current = segment;
            }
            else if (segment.Number < manifest.CurrentSegment)
            {
                leftovers.Add(new WalLeftover(segment.Path, segment.Length, $"older than the current segment {manifest.CurrentSegment}, which holds a checkpoint of every live record (a crash interrupted the deletion)"));
            }
            else
            {
                leftovers.Add(new WalLeftover(segment.Path, segment.Length, $"newer than the current segment {manifest.CurrentSegment}: a checkpoint the manifest never switched to (a crash interrupted it); it holds only copies"));
            }
        }

        if (current is null)
        {
            var missing = System.IO.Path.Combine(directory, WalFormat.SegmentFileName(manifest!.CurrentSegment));
            return Corrupt(missing, 0, $"the current segment {System.IO.Path.GetFileName(missing)} named by the manifest is missing");
        }

        if (!WalFormat.TryReadSegmentHeader(current.Head, out var number, out var logId, out _, out var headerProblem))
        {
            return Corrupt(current.Path, 0, $"{headerProblem} (the current segment named by the manifest, so not a torn creation)");
        }

        if (number != current.Number)
        {
            return Corrupt(current.Path, 8, $"the header says segment {number}");
        }

        if (logId != manifest!.LogId)
        {
            return Corrupt(current.Path, 16, $"the segment belongs to another log (log id {logId:x16}, the manifest says {manifest.LogId:x16})");
        }

        return new WalDirectoryVerdict(manifest, current, leftovers, null, 0, null);
    }

    private static WalDirectoryVerdict Corrupt(string path, long offset, string problem) => new(null, null, [], path, offset, problem);
}
