using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace TwoPC.Benchmarks;

/// <summary>
/// What a benchmark ran on, for the header of a results file: CPU, cores, memory, OS, .NET runtime,
/// and the file system under each directory that matters (fsync cost depends on it).
/// </summary>
public sealed record MachineInfo(
    string Cpu,
    int LogicalCores,
    long MemoryBytes,
    string OperatingSystem,
    string Runtime,
    string Configuration,
    IReadOnlyList<(string Label, string Path, string FileSystem)> FileSystems)
{
    /// <summary>Collects the details of this machine; <paramref name="directories"/> are labelled paths whose file system to report.</summary>
    public static MachineInfo Collect(params (string Label, string Path)[] directories)
    {
        ArgumentNullException.ThrowIfNull(directories);
        return new MachineInfo(
            ReadCpuModel(),
            Environment.ProcessorCount,
            ReadMemoryBytes(),
            RuntimeInformation.OSDescription + " " + RuntimeInformation.OSArchitecture,
            RuntimeInformation.FrameworkDescription,
#if DEBUG
            "Debug (numbers are not representative)",
#else
            "Release",
#endif
            directories.Select(d => (d.Label, d.Path, DescribeFileSystem(d.Path))).ToArray());
    }

    /// <summary>A markdown bullet list of the details.</summary>
    public string ToMarkdown()
    {
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"- CPU: {Cpu}, {LogicalCores} logical cores\n");
        text.Append(CultureInfo.InvariantCulture, $"- Memory: {MemoryBytes / (1024.0 * 1024 * 1024):F1} GiB\n");
        text.Append(CultureInfo.InvariantCulture, $"- OS: {OperatingSystem}\n");
        text.Append(CultureInfo.InvariantCulture, $"- Runtime: {Runtime}, {Configuration} build, GC server={System.Runtime.GCSettings.IsServerGC}\n");
        foreach (var (label, path, fileSystem) in FileSystems)
        {
            text.Append(CultureInfo.InvariantCulture, $"- {label} `{path}`: {fileSystem}\n");
        }

        return text.ToString();
    }

    private static string ReadCpuModel()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/cpuinfo"))
            {
                if (line.StartsWith("model name", StringComparison.Ordinal) && line.IndexOf(':', StringComparison.Ordinal) is var colon and > 0)
                {
                    return line[(colon + 1)..].Trim();
                }
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }

        return RuntimeInformation.ProcessArchitecture.ToString();
    }

    private static long ReadMemoryBytes()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/meminfo"))
            {
                // "MemTotal:       24567890 kB"
                if (line.StartsWith("MemTotal:", StringComparison.Ordinal)
                    && long.TryParse(line["MemTotal:".Length..].Replace("kB", string.Empty, StringComparison.Ordinal).Trim(), CultureInfo.InvariantCulture, out var kib))
                {
                    return kib * 1024;
                }
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }

        return GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
    }

    /// <summary>The file system type and device of the mount holding <paramref name="path"/> (longest matching mount point).</summary>
    private static string DescribeFileSystem(string path)
    {
        var fullPath = Path.GetFullPath(path);
        try
        {
            if (File.Exists("/proc/mounts"))
            {
                string? best = null;
                var bestLength = -1;
                foreach (var line in File.ReadLines("/proc/mounts"))
                {
                    var parts = line.Split(' ');
                    if (parts.Length < 4)
                    {
                        continue;
                    }

                    var mountPoint = parts[1].Replace("\\040", " ", StringComparison.Ordinal);
                    var matches = mountPoint == "/"
                        || fullPath == mountPoint
                        || fullPath.StartsWith(mountPoint.TrimEnd('/') + "/", StringComparison.Ordinal);
                    if (matches && mountPoint.Length > bestLength)
                    {
                        bestLength = mountPoint.Length;
                        best = $"{parts[2]} on {parts[0]} (mounted at {mountPoint}, {parts[3]})";
                    }
                }

                if (best is not null)
                {
                    return best;
                }
            }

            var drive = new DriveInfo(fullPath);
            return $"{drive.DriveFormat} ({drive.Name})";
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return "unknown (" + ex.Message + ")";
        }
    }
}
