using System.Globalization;
using System.Text;

namespace TwoPC.Benchmarks;

/// <summary>Writes a benchmark's results as markdown under <c>Tests/TwoPC.Benchmarks/results/</c>, with the machine it ran on.</summary>
public static class ResultsFile
{
    /// <summary>
    /// Writes <paramref name="fileName"/> and returns its path. The header records the command, the time,
    /// and <see cref="MachineInfo"/> including the file systems of the results and data directories.
    /// </summary>
    /// <param name="fileName">For example <c>wal.md</c>.</param>
    /// <param name="title">The heading.</param>
    /// <param name="command">The command line that reproduces the run.</param>
    /// <param name="description">What one operation is and how long each cell ran.</param>
    /// <param name="table">The markdown results table.</param>
    /// <param name="verdict">The conclusion against the target.</param>
    /// <param name="resultsDirectory">Where to write; the project's <c>results</c> folder when <see langword="null"/>.</param>
    /// <param name="dataDirectory">Where the benchmark put its files; the system temp directory when <see langword="null"/>.</param>
    public static string Write(string fileName, string title, string command, string description, string table, string verdict, string? resultsDirectory = null, string? dataDirectory = null)
    {
        var directory = resultsDirectory ?? DefaultResultsDirectory();
        Directory.CreateDirectory(directory);
        var machine = MachineInfo.Collect(("Results directory", directory), ("Data directory", dataDirectory ?? Path.GetTempPath()));
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"# {title}\n\n");
        text.Append(CultureInfo.InvariantCulture, $"{description}\n\n");
        text.Append(CultureInfo.InvariantCulture, $"Command: `{command}`  \nRun at: {DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm:ss} UTC\n\n");
        text.Append("## Machine\n\n");
        text.Append(machine.ToMarkdown());
        text.Append("\n## Results\n\n");
        text.Append(table.TrimEnd('\n', '\r'));
        text.Append("\n\n");
        text.Append(verdict.TrimEnd('\n', '\r'));
        text.Append('\n');
        var path = Path.Combine(directory, fileName);
        File.WriteAllText(path, text.ToString());
        Console.WriteLine($"Wrote {path}");
        return path;
    }

    /// <summary>The <c>results</c> folder next to <c>TwoPC.Benchmarks.csproj</c>, found from the build output upwards.</summary>
    public static string DefaultResultsDirectory()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "TwoPC.Benchmarks.csproj")))
            {
                return Path.Combine(dir.FullName, "results");
            }
        }

        return Path.Combine(Directory.GetCurrentDirectory(), "results");
    }
}
