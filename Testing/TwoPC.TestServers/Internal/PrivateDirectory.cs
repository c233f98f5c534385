using System.Globalization;

namespace TwoPC.TestServers.Internal;

/// <summary>
/// A server's private directory (<c>BASE/PREFIX-RANDOM</c>) with an owner file naming the test
/// process, so a later run can find and clean up servers whose test process was killed.
/// </summary>
internal static class PrivateDirectory
{
    private const string OwnerFileName = ".twopc-owner";

    /// <summary>The default base: one directory per user under the temp directory, short enough for unix socket paths.</summary>
    public static string DefaultBase => Path.Combine(Path.GetTempPath(), "twopc-test-servers-" + Environment.UserName);

    public static string Create(string baseDirectory, string prefix)
    {
        if (!OperatingSystem.IsWindows())
        {
            // 0755: a server account switched to from root must be able to pass through.
            Directory.CreateDirectory(baseDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        }
        else
        {
            Directory.CreateDirectory(baseDirectory);
        }

        var path = Path.Combine(Path.GetFullPath(baseDirectory), prefix + "-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(path);
        File.WriteAllText(Path.Combine(path, OwnerFileName), OwnerToken());
        return path;
    }

    /// <summary>Private directories under <paramref name="baseDirectory"/> whose test process is gone.</summary>
    public static IReadOnlyList<string> FindOrphans(string baseDirectory, string prefix)
    {
        if (!Directory.Exists(baseDirectory))
        {
            return [];
        }

        var orphans = new List<string>();
        foreach (var directory in Directory.EnumerateDirectories(baseDirectory, prefix + "-*"))
        {
            try
            {
                var ownerFile = Path.Combine(directory, OwnerFileName);
                if (File.Exists(ownerFile))
                {
                    if (!IsAlive(File.ReadAllText(ownerFile)))
                    {
                        orphans.Add(directory);
                    }
                }
                else if (DateTime.UtcNow - Directory.GetCreationTimeUtc(directory) > TimeSpan.FromMinutes(10))
                {
                    orphans.Add(directory);
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
            }
        }

        return orphans;
    }

    /// <summary>Deletes <paramref name="path"/>, retrying briefly (a server may still be closing files).</summary>
    public static bool TryDelete(string path)
    {
        for (var attempt = 0; attempt < 5; attempt++)
        {
            try
            {
                if (Directory.Exists(path))
                {
                    Directory.Delete(path, recursive: true);
                }

                return true;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                Thread.Sleep(100 * (attempt + 1));
            }
        }

        return false;
    }

    private static string OwnerToken()
        => string.Create(CultureInfo.InvariantCulture, $"{Environment.ProcessId} {ProcessStartTicks(Environment.ProcessId)}");

    private static bool IsAlive(string token)
    {
        var parts = token.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length < 1 || !int.TryParse(parts[0], NumberStyles.Integer, CultureInfo.InvariantCulture, out var pid))
        {
            return false;
        }

        if (!OperatingSystem.IsLinux())
        {
            try
            {
                using var process = System.Diagnostics.Process.GetProcessById(pid);
                return !process.HasExited;
            }
            catch (ArgumentException)
            {
                return false;
            }
        }

        var startTicks = ProcessStartTicks(pid);
        // A different start time means the pid was reused by another process.
        return startTicks is not null && (parts.Length < 2 || parts[1] == startTicks);
    }

    /// <summary>Field 22 of /proc/PID/stat (start time in clock ticks since boot); null if the process does not exist.</summary>
    private static string? ProcessStartTicks(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/stat");
            // The command name (field 2) is parenthesized and may contain spaces.
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return fields.Length > 19 ? fields[19] : string.Empty;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
