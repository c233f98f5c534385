using System.Diagnostics;

namespace TwoPC.TestServers.Internal;

/// <summary>
/// A machine-wide exclusive lock: an flock(2) on a file in /var/lock (or the temp directory), the
/// same lock <c>flock(1)</c> takes, so scripts/ensure-servers.sh and parallel test processes
/// serialize on it. Released when disposed or when the process dies.
/// </summary>
internal static class MachineLock
{
    public static string PathFor(string name)
    {
        var directory = Directory.Exists("/var/lock") ? "/var/lock" : Path.GetTempPath();
        return Path.Combine(directory, name + ".lock");
    }

    public static async Task<IDisposable> AcquireAsync(string name, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var path = PathFor(name);
        var stopwatch = Stopwatch.StartNew();
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            try
            {
                // On Unix, FileShare.None takes flock(LOCK_EX | LOCK_NB) and fails with IOException when held.
                return Open(path);
            }
            catch (IOException) when (stopwatch.Elapsed < timeout)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(250), cancellationToken).ConfigureAwait(false);
            }
            catch (IOException ex)
            {
                throw new TestServerException($"Timed out after {timeout.TotalSeconds:F0} s waiting for the machine-wide lock {path} (held by another installer).", ex);
            }
        }
    }

    private static FileStream Open(string path)
    {
        try
        {
            var stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            TryMakeWorldWritable(path);
            return stream;
        }
        catch (UnauthorizedAccessException)
        {
            // Created by another user (e.g. root): locking works on a read-only descriptor too.
            return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.None);
        }
    }

    private static void TryMakeWorldWritable(string path)
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        try
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.OtherRead | UnixFileMode.OtherWrite);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }
    }
}
