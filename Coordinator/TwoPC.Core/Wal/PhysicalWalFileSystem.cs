using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace TwoPC.Wal;

/// <summary>The real file system: <see cref="RandomAccess"/> positional I/O and real fsync.</summary>
internal sealed class PhysicalWalFileSystem : IWalFileSystem
{
    /// <summary>The name of the lock file inside a log directory.</summary>
    public const string LockFileName = "LOCK";

    /// <summary>The shared instance; it has no state.</summary>
    public static PhysicalWalFileSystem Instance { get; } = new();

    public void CreateDirectory(string path) => Directory.CreateDirectory(path);

    public IDisposable? TryLockDirectory(string directory)
    {
        try
        {
            // FileShare.None is an exclusive flock() on Unix and a sharing lock on Windows; both
            // are released by the OS when the process dies, so a crashed coordinator never blocks a restart.
            return new FileStream(Path.Combine(directory, LockFileName), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException ex) when (IsLockConflict(ex))
        {
            return null;
        }
    }

    // EWOULDBLOCK from flock (11 on Linux, 35 on macOS/BSD); ERROR_SHARING_VIOLATION / ERROR_LOCK_VIOLATION on Windows.
    private static bool IsLockConflict(IOException ex) =>
        ex.GetType() == typeof(IOException) && ex.HResult is 11 or 35 or unchecked((int)0x80070020) or unchecked((int)0x80070021);

    public IReadOnlyList<string> ListFiles(string directory, string searchPattern) =>
        Directory.GetFiles(directory, searchPattern);

    public SafeFileHandle OpenFile(string path, FileMode mode) =>
        File.OpenHandle(path, mode, FileAccess.ReadWrite, FileShare.Read);

    public long GetLength(SafeFileHandle file) => RandomAccess.GetLength(file);

    public int Read(SafeFileHandle file, Span<byte> buffer, long offset) => RandomAccess.Read(file, buffer, offset);

    public void Write(SafeFileHandle file, ReadOnlySpan<byte> data, long offset) => RandomAccess.Write(file, data, offset);

    public void FlushToDisk(SafeFileHandle file) => RandomAccess.FlushToDisk(file);

    public void SetLength(SafeFileHandle file, long length) => RandomAccess.SetLength(file, length);

    public void DeleteFile(string path) => File.Delete(path);

    public void FlushDirectory(string directory)
    {
        // Windows (NTFS) journals directory entries itself and cannot open a directory as a file.
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        // .NET refuses to open a directory as a file, so fsync it through libc.
        var fd = NativeMethods.Open(directory, 0 /* O_RDONLY */);
        if (fd < 0)
        {
            throw new IOException($"Cannot open directory '{directory}' to fsync it (errno {Marshal.GetLastPInvokeError()}).");
        }

        try
        {
            if (NativeMethods.FSync(fd) != 0)
            {
                throw new IOException($"fsync of directory '{directory}' failed (errno {Marshal.GetLastPInvokeError()}).");
            }
        }
        finally
        {
            _ = NativeMethods.Close(fd);
        }
    }

    private static class NativeMethods
    {
        [DllImport("libc", EntryPoint = "open", SetLastError = true)]
        [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
        public static extern int Open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);

        [DllImport("libc", EntryPoint = "fsync", SetLastError = true)]
        [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
        public static extern int FSync(int fd);

        [DllImport("libc", EntryPoint = "close", SetLastError = true)]
        [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
        public static extern int Close(int fd);
    }
}
