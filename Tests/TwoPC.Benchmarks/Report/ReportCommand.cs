using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace TwoPC.Benchmarks.Report;

/// <summary>
/// <c>report [--seconds &lt;per cell&gt;] [--only wal,postgres,...] [--micro]</c>: runs the benchmarks one
/// after another (each writes its own <c>results/*.md</c> as when run alone), then writes
/// <c>results/README.md</c> — the machine once, per benchmark its command, run time, table and verdict —
/// and SVG charts under <c>results/charts/</c>.
/// </summary>
public static class ReportCommand
{
    private const string Usage = "Options: --seconds <per cell> (each benchmark's default)  --only <wal,coordinator,postgres,publish,remote>  --micro (also the BenchmarkDotNet micro-benchmarks; long)";

    /// <summary>The benchmarks in the order they run, with how to pass the seconds per cell and what to draw.</summary>
    private static readonly BenchmarkSpec[] Benchmarks =
    [
        new("wal", s => ["--duration", s], (a, r) => WalBenchmark.RunAsync(a, r), "WAL: group commit vs. one fsync per record", "durable commit decisions/s", LogY: true),
        new("coordinator", s => [s], (a, r) => CoordinatorBenchmark.RunAsync(a, r), "Coordinator, two no-op participants", "global transactions/s (raw WAL: decisions/s)"),
        new("postgres", s => [s], (a, r) => PostgresBenchmark.RunAsync(a, r), "Two PostgreSQL databases, one UPDATE each", "transactions/s"),
        new("publish", s => [s], (a, r) => PublishBenchmark.RunAsync(a, r), "One UPDATE + one RabbitMQ message", "operations/s (confirmed; Wolverine: delivered)",
            LatencyNote: "Wolverine: end to end, to delivery"),
        new("remote", s => [s], (a, r) => RemoteBenchmark.RunAsync(a, r), "Remote participants vs. embedded coordinator", "transactions/s"),
        new("log", s => ["--duration", s], (a, r) => LogBenchmark.RunAsync(a, r), "Transaction log: PostgreSQL (HA) vs. file", "durable commit decisions/s"),
    ];

    /// <summary>Runs the report; <paramref name="args"/> are the options after <c>report</c>.</summary>
    public static async Task<int> RunAsync(string[] args)
    {
        ArgumentNullException.ThrowIfNull(args);
        string? seconds = null;
        var only = Benchmarks.Select(b => b.Name).ToList();
        var micro = false;
        for (var i = 0; i < args.Length; i++)
        {
            var value = i + 1 < args.Length ? args[i + 1] : null;
            switch (args[i])
            {
                case "--seconds" when value is not null && double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out _):
                    seconds = value;
                    i++;
                    break;
                case "--only" when value is not null && value.Split(',').All(n => Benchmarks.Any(b => b.Name == n)):
                    only = [.. value.Split(',')];
                    i++;
                    break;
                case "--micro":
                    micro = true;
                    break;
                default:
                    Console.Error.WriteLine($"Unknown or incomplete option '{args[i]}'. {Usage}");
                    return 2;
            }
        }

        var resultsDirectory = ResultsFile.DefaultResultsDirectory();
        var points = new ReportPoints();
        var sections = new List<Section>();
        var total = Stopwatch.StartNew();
        foreach (var benchmark in Benchmarks.Where(b => only.Contains(b.Name)))
        {
            var benchmarkArgs = seconds is null ? [] : benchmark.Args(seconds);
            Console.WriteLine($"=== {benchmark.Name} {string.Join(' ', benchmarkArgs)}");
            var loadBefore = LoadAverage();
            var started = Stopwatch.StartNew();
            string? failure = null;
            try
            {
                var exitCode = await benchmark.RunAsync(benchmarkArgs, points);
                failure = exitCode == 0 ? null : $"exited with {exitCode}";
            }
            catch (Exception ex)
            {
                failure = ex.GetType().Name + ": " + ex.Message;
                Console.Error.WriteLine($"{benchmark.Name} failed: {ex}");
            }

            sections.Add(new Section(benchmark, started.Elapsed, failure, loadBefore, LoadAverage()));
        }

        if (micro)
        {
            var loadBefore = LoadAverage();
            var started = Stopwatch.StartNew();
            var exitCode = HotPathBenchmarks.Run([]);
            sections.Add(new Section(new BenchmarkSpec("micro", _ => [], (_, _) => Task.FromResult(0), "Micro-benchmarks", string.Empty), started.Elapsed, exitCode == 0 ? null : $"exited with {exitCode}", loadBefore, LoadAverage()));
        }

        var readme = new StringBuilder();
        readme.Append("# Benchmark results\n\n");
        readme.Append("Written by `dotnet run -c Release --project Tests/TwoPC.Benchmarks -- report")
            .Append(args.Length > 0 ? " " + string.Join(' ', args) : string.Empty).Append('`')
            .Append(CultureInfo.InvariantCulture, $" at {DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm} UTC in {total.Elapsed.TotalMinutes:F1} min: every benchmark below comes from this one run, on this machine, one after another. Each section gives the benchmark's own command, which reruns only that benchmark and rewrites its `results/<name>.md`. Charts are SVG under `charts/`.\n\n");
        readme.Append("## Machine\n\n");
        readme.Append(MachineInfo.Collect(("Results directory", resultsDirectory), ("Temp directory (WAL files, server data)", Path.GetTempPath())).ToMarkdown());
        readme.Append('\n');
        foreach (var section in sections)
        {
            AppendSection(readme, section, points.All.Where(p => p.Benchmark == section.Benchmark.Name).ToArray(), resultsDirectory);
        }

        var path = Path.Combine(resultsDirectory, "README.md");
        await File.WriteAllTextAsync(path, readme.ToString());
        Console.WriteLine($"Wrote {path}");
        return sections.Any(s => s.Failure is not null) ? 1 : 0;
    }

    private static void AppendSection(StringBuilder readme, Section section, BenchmarkPoint[] points, string resultsDirectory)
    {
        var name = section.Benchmark.Name;
        var file = Path.Combine(resultsDirectory, name + ".md");
        var lines = File.Exists(file) && section.Failure is null ? File.ReadAllLines(file) : [];
        var title = lines.Length > 0 && lines[0].StartsWith("# ", StringComparison.Ordinal) ? lines[0][2..] : name;
        readme.Append(CultureInfo.InvariantCulture, $"## {title}\n\n");
        readme.Append(CultureInfo.InvariantCulture, $"Run time in this report: {section.Elapsed.TotalSeconds:F0} s (set-up, warm-ups and every cell); load average (1 min) {section.LoadBefore} before, {section.LoadAfter} after, on {Environment.ProcessorCount} cores. [`{name}.md`]({name}.md) holds the benchmark's own latest run, which may be a later or earlier run than this report's.\n\n");
        if (section.Failure is not null)
        {
            readme.Append(CultureInfo.InvariantCulture, $"**Failed**: {section.Failure}. See the console output of the run.\n\n");
            return;
        }

        // The benchmark's own file: description, command and run time, then (after its machine section) the table and verdict.
        var machine = Array.IndexOf(lines, "## Machine");
        var results = Array.IndexOf(lines, "## Results");
        var header = lines.Skip(1).Take((machine > 0 ? machine : lines.Length) - 1);
        var body = results > 0 ? lines.Skip(results + 1) : [];
        readme.Append(string.Join('\n', header).Trim()).Append("\n\n");
        if (points.Length > 0)
        {
            var chartName = name + "-throughput.svg";
            ReportCharts.Throughput(Path.Combine(resultsDirectory, "charts", chartName), section.Benchmark.ChartTitle + ": throughput", section.Benchmark.YLabel, points, section.Benchmark.LogY);
            readme.Append(CultureInfo.InvariantCulture, $"![{name}: throughput vs. concurrency](charts/{chartName})\n\n");

            // Latency at 32 concurrent, or the measured concurrency nearest to it.
            var concurrency = points.Select(p => p.Concurrency).Distinct().OrderBy(c => Math.Abs(c - 32)).ThenBy(c => c).First();
            var latencyName = name + "-latency.svg";
            ReportCharts.Latency(Path.Combine(resultsDirectory, "charts", latencyName), section.Benchmark.ChartTitle + ": latency", concurrency, points, section.Benchmark.LatencyNote);
            readme.Append(CultureInfo.InvariantCulture, $"![{name}: p50 and p99 latency at {concurrency} concurrent](charts/{latencyName})\n\n");
        }

        readme.Append(string.Join('\n', body).Trim()).Append("\n\n");
    }

    private sealed record BenchmarkSpec(string Name, Func<string, string[]> Args, Func<string[], ReportPoints, Task<int>> RunAsync, string ChartTitle, string YLabel, bool LogY = false, string? LatencyNote = null);

    /// <summary>The 1-minute load average from <c>/proc/loadavg</c>: a load well above the core count means other work shared the CPU.</summary>
    private static string LoadAverage()
    {
        try
        {
            return File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Split(' ')[0] : "unknown";
        }
        catch (IOException)
        {
            return "unknown";
        }
    }

    private sealed record Section(BenchmarkSpec Benchmark, TimeSpan Elapsed, string? Failure, string LoadBefore, string LoadAfter);
}
