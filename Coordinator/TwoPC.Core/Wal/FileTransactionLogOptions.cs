namespace TwoPC.Wal;

/// <summary>Settings of a <see cref="FileTransactionLog"/>.</summary>
public sealed class FileTransactionLogOptions
{
    /// <summary>The default <see cref="SegmentSize"/>: 64 MiB.</summary>
    public const long DefaultSegmentSize = 64L * 1024 * 1024;

    /// <summary>The smallest <see cref="SegmentSize"/> accepted: 4 KiB.</summary>
    public const long MinimumSegmentSize = 4 * 1024;

    /// <summary>
    /// Required. The directory holding the log's manifest, segment files and lock file; created if missing.
    /// Exactly one coordinator may use it at a time, and it should be on a local disk whose fsync is honest.
    /// </summary>
    public string Directory { get; set; } = string.Empty;

    /// <summary>
    /// The size in bytes at which the log starts a new segment and deletes the older ones (after
    /// copying the live records forward). Disk use stays around twice this plus the live records.
    /// </summary>
    public long SegmentSize { get; set; } = DefaultSegmentSize;

    internal void Validate()
    {
        if (string.IsNullOrWhiteSpace(Directory))
        {
            throw new ArgumentException($"{nameof(FileTransactionLogOptions)}.{nameof(Directory)} is required.", "options");
        }

        if (SegmentSize < MinimumSegmentSize)
        {
            throw new ArgumentOutOfRangeException("options", SegmentSize, $"{nameof(FileTransactionLogOptions)}.{nameof(SegmentSize)} must be at least {MinimumSegmentSize} bytes.");
        }
    }
}
