using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace TwoPC.TestServers.Internal;

/// <summary>
/// Finds and kills the OS processes of one private server by a marker (its private directory's
/// path) in their command line or environment, via /proc (Linux). Every process a server start
/// spawns inherits environment variables pointing into that directory, so this catches the
/// launcher shell, the Erlang VM and its helpers (erl_child_setup, inet_gethost) and CLI tools —
/// but never epmd: the Erlang port mapper is shared by all Erlang nodes on the machine, and the
/// one our node may have started (which inherited our environment) must outlive it.
/// </summary>
internal static class NodeProcesses
{
    private static readonly string[] Spared = ["epmd"];

    /// <summary>Live (non-zombie) processes, other than this one and epmd, whose command line or environment contains <paramref name="marker"/>.</summary>
    public static IReadOnlyList<int> Find(string marker)
    {
        if (!OperatingSystem.IsLinux())
        {
            return [];
        }

        var needle = Encoding.UTF8.GetBytes(marker);
        var found = new List<int>();
        IEnumerable<string> entries;
        try
        {
            entries = Directory.EnumerateDirectories("/proc").ToList();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return [];
        }

        foreach (var entry in entries)
        {
            if (!int.TryParse(Path.GetFileName(entry), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) || pid == Environment.ProcessId)
            {
                continue;
            }

            var comm = ReadText(Path.Combine(entry, "comm"))?.Trim();
            if (comm is null || Spared.Contains(comm, StringComparer.Ordinal) || !IsAlive(pid))
            {
                continue;
            }

            if (Contains(ReadBytes(Path.Combine(entry, "cmdline")), needle) || Contains(ReadBytes(Path.Combine(entry, "environ")), needle))
            {
                found.Add(pid);
            }
        }

        return found;
    }

    /// <summary>SIGKILLs every process <see cref="Find"/> reports and waits (up to <paramref name="wait"/>) until they are gone. Returns how many were killed.</summary>
    public static int KillAll(string marker, TimeSpan wait)
    {
        var pids = Find(marker);
        foreach (var pid in pids)
        {
            Kill(pid);
        }

        var stopwatch = Stopwatch.StartNew();
        while (pids.Any(IsAlive) && stopwatch.Elapsed < wait)
        {
            Thread.Sleep(50);
        }

        return pids.Count;
    }

    /// <summary>Whether <paramref name="pid"/> exists and is not a zombie.</summary>
    public static bool IsAlive(int pid)
    {
        if (!OperatingSystem.IsLinux())
        {
            try
            {
                using var process = Process.GetProcessById(pid);
                return !process.HasExited;
            }
            catch (ArgumentException)
            {
                return false;
            }
        }

        var stat = ReadText($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/stat");
        if (stat is null)
        {
            return false;
        }

        // "PID (COMM) STATE ...": COMM may contain spaces and parentheses.
        var afterComm = stat.LastIndexOf(')');
        return afterComm < 0 || afterComm + 2 >= stat.Length || stat[afterComm + 2] is not ('Z' or 'X');
    }

    private static void Kill(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            process.Kill();
        }
        catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception or NotSupportedException)
        {
            // Gone already, or not ours to kill.
        }
    }

    private static bool Contains(byte[]? haystack, byte[] needle)
        => haystack is not null && haystack.AsSpan().IndexOf(needle) >= 0;

    private static byte[]? ReadBytes(string path)
    {
        try
        {
            return File.ReadAllBytes(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static string? ReadText(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
