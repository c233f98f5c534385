using Microsoft.Extensions.Logging;

namespace TwoPC.Wal;

/// <summary>Source-generated log messages of the write-ahead log; event ids 2000-2099.</summary>
internal static partial class WalLog
{
    [LoggerMessage(EventId = 2000, Level = LogLevel.Information,
        Message = "Opened transaction log {Directory}: epoch {Epoch}, {PendingDecisions} pending decisions, {Heuristics} heuristics, {Segments} segments, {Warnings} repairs")]
    public static partial void Opened(this ILogger logger, string directory, ulong epoch, int pendingDecisions, int heuristics, int segments, int warnings);

    [LoggerMessage(EventId = 2001, Level = LogLevel.Warning,
        Message = "Truncated {Bytes} bytes of torn data at offset {Offset} of {File} ({Problem}); a crash interrupted the last write")]
    public static partial void TornTailTruncated(this ILogger logger, long bytes, string file, long offset, string problem);

    [LoggerMessage(EventId = 2002, Level = LogLevel.Warning,
        Message = "Removed segment {File} ({Bytes} bytes) that holds nothing the log needs: {Problem}")]
    public static partial void TornSegmentRemoved(this ILogger logger, string file, long bytes, string problem);

    [LoggerMessage(EventId = 2003, Level = LogLevel.Information,
        Message = "Rolled over to segment {File} with a checkpoint of {Records} live records ({Bytes} bytes)")]
    public static partial void CheckpointWritten(this ILogger logger, string file, int records, int bytes);

    [LoggerMessage(EventId = 2004, Level = LogLevel.Debug,
        Message = "Deleted {Count} segments of {Directory} older than segment {Segment}")]
    public static partial void SegmentsDeleted(this ILogger logger, int count, string directory, ulong segment);

    [LoggerMessage(EventId = 2005, Level = LogLevel.Critical,
        Message = "Transaction log {Directory} failed and stopped accepting records (fail-stop); restart the coordinator to recover")]
    public static partial void Failed(this ILogger logger, string directory, Exception exception);

    [LoggerMessage(EventId = 2006, Level = LogLevel.Error,
        Message = "Transaction log directory {Directory} is locked by another coordinator")]
    public static partial void LockConflict(this ILogger logger, string directory);

    [LoggerMessage(EventId = 2008, Level = LogLevel.Error,
        Message = "Transaction log directory {Directory} was written by coordinator node {LogNodeId}, not by this node {NodeId}")]
    public static partial void NodeMismatch(this ILogger logger, string directory, string logNodeId, string nodeId);

    [LoggerMessage(EventId = 2007, Level = LogLevel.Information, Message = "Closed transaction log {Directory}")]
    public static partial void Closed(this ILogger logger, string directory);
}
