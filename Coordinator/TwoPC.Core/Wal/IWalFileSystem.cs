using Microsoft.Win32.SafeHandles;

namespace TwoPC.Wal;

/// <summary>
/// The few file operations the write-ahead log needs, behind an interface so tests can inject
/// write and fsync failures. <see cref="PhysicalWalFileSystem"/> is the real one.
/// </summary>
internal interface IWalFileSystem
{
    /// <summary>Creates the directory (and its parents) if it does not exist.</summary>
    void CreateDirectory(string path);

    /// <summary>
    /// Takes the exclusive lock of a log directory, or returns <see langword="null"/> when another
    /// owner (in this or another process) holds it. Disposing the result releases the lock.
    /// </summary>
    IDisposable? TryLockDirectory(string directory);

    /// <summary>Full paths of the files in <paramref name="directory"/> matching <paramref name="searchPattern"/>.</summary>
    IReadOnlyList<string> ListFiles(string directory, string searchPattern);

    /// <summary>Opens a file for reading and writing.</summary>
    SafeFileHandle OpenFile(string path, FileMode mode);

    /// <summary>The file's length in bytes.</summary>
    long GetLength(SafeFileHandle file);

    /// <summary>Reads at <paramref name="offset"/>; returns the bytes read (0 at the end of the file).</summary>
    int Read(SafeFileHandle file, Span<byte> buffer, long offset);

    /// <summary>Writes all of <paramref name="data"/> at <paramref name="offset"/>.</summary>
    void Write(SafeFileHandle file, ReadOnlySpan<byte> data, long offset);

    /// <summary>Forces the file's data and metadata to stable storage (fsync).</summary>
    void FlushToDisk(SafeFileHandle file);

    /// <summary>Truncates or extends the file.</summary>
    void SetLength(SafeFileHandle file, long length);

    /// <summary>Deletes a file.</summary>
    void DeleteFile(string path);

    /// <summary>Renames a file, replacing <paramref name="destination"/> atomically (rename(2)).</summary>
    void MoveFile(string source, string destination);

    /// <summary>Forces the directory's entries (files created or deleted) to stable storage.</summary>
    void FlushDirectory(string directory);
}
