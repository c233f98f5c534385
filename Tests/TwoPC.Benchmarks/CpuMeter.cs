using System.Diagnostics;
using System.Globalization;

namespace TwoPC.Benchmarks;

/// <summary>
/// CPU time spent by this process (the client: the coordinator, Npgsql, the load loop) and by one PostgreSQL server
/// (the postmaster, its live children, and the children it already reaped), read from /proc. Where the time of a
/// CPU-bound benchmark goes: a 2-core machine running both sides shows which side a variant pays on.
/// </summary>
internal sealed class CpuMeter(string dataDirectory)
{
    // USER_HZ: /proc reports times in clock ticks of 1/100 s on Linux.
    private const double TicksPerSecond = 100;

    public (TimeSpan Client, TimeSpan Server) Read()
    {
        using var self = Process.GetCurrentProcess();
        return (self.TotalProcessorTime, TimeSpan.FromSeconds(ServerTicks() / TicksPerSecond));
    }

    private long ServerTicks()
    {
        var postmaster = int.Parse(File.ReadLines(Path.Combine(dataDirectory, "postmaster.pid")).First(), CultureInfo.InvariantCulture);
        long ticks = 0;
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid))
            {
                continue;
            }

            string stat;
            try
            {
                stat = File.ReadAllText(Path.Combine(dir, "stat"));
            }
            catch (IOException)
            {
                continue; // exited meanwhile
            }
            catch (UnauthorizedAccessException)
            {
                continue;
            }

            // Fields after the command name (which may hold spaces, in parentheses): state ppid ... utime(14) stime(15) cutime(16) cstime(17).
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            var ppid = int.Parse(fields[1], CultureInfo.InvariantCulture);
            long Field(int number) => long.Parse(fields[number - 3], CultureInfo.InvariantCulture);
            if (pid == postmaster)
            {
                ticks += Field(14) + Field(15) + Field(16) + Field(17);
            }
            else if (ppid == postmaster)
            {
                ticks += Field(14) + Field(15);
            }
        }

        return ticks;
    }
}
