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
        var path = Path.Combine(directory, LockFileName);
        return OperatingSystem.IsLinux() ? TryFlock(path) : TryLockWithFileShare(path);
    }

    /// <summary>
    /// Linux: flock(2) on a descriptor opened through libc. .NET's own FileShare lock is skipped when
    /// DOTNET_SYSTEM_IO_DISABLEFILELOCKING is set, which would let two coordinators write one log; this
    /// one cannot be switched off. The kernel releases it when the process dies, so a crash never blocks a restart.
    /// </summary>
    private static SafeFileHandle? TryFlock(string path)
    {
        var fd = NativeMethods.Open(path, LinuxOpenReadWrite | LinuxOpenCreate | LinuxOpenCloseOnExec, 420 /* 0644 */);
        if (fd < 0)
        {
            throw new IOException($"Cannot open the lock file '{path}' (errno {Marshal.GetLastPInvokeError()}).");
        }

        var handle = new SafeFileHandle(fd, ownsHandle: true);
        int result;
        int errno;
        do
        {
            result = NativeMethods.Flock(fd, LockExclusive | LockNonBlocking);
            errno = result == 0 ? 0 : Marshal.GetLastPInvokeError();
        }
        while (result != 0 && errno == LinuxEintr);

        if (result == 0)
        {
            return handle;
        }

        handle.Dispose();
        return errno == LinuxEwouldblock
            ? null
            : throw new IOException($"Cannot lock '{path}' (flock errno {errno}).");
    }

    private static FileStream? TryLockWithFileShare(string path)
    {
        try
        {
            // FileShare.None is a sharing lock on Windows (and an exclusive flock() on other Unixes); the OS
            // releases it when the process dies, so a crashed coordinator never blocks a restart.
            return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException ex) when (IsLockConflict(ex))
        {
            return null;
        }
    }

    private const int LinuxOpenReadWrite = 2;
    private const int LinuxOpenCreate = 0x40;
    private const int LinuxOpenCloseOnExec = 0x80000;
    private const int LockExclusive = 2;
    private const int LockNonBlocking = 4;
    private const int LinuxEintr = 4;
    private const int LinuxEwouldblock = 11;

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

    public void MoveFile(string source, string destination) => File.Move(source, destination, overwrite: true);

    public void FlushDirectory(string directory)
    {
        // Windows (NTFS) journals directory entries itself and cannot open a directory as a file.
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        // .NET refuses to open a directory as a file, so fsync it through libc.
        var fd = NativeMethods.Open(directory, 0 /* O_RDONLY */, 0);
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
        public static extern int Open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags, int mode);

        [DllImport("libc", EntryPoint = "flock", SetLastError = true)]
        [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
        public static extern int Flock(int fd, int operation);

        [DllImport("libc", EntryPoint = "fsync", SetLastError = true)]
        [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
        public static extern int FSync(int fd);

        [DllImport("libc", EntryPoint = "close", SetLastError = true)]
        [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
        public static extern int Close(int fd);
    }
}
