using System.CommandLine;

namespace TwoPC.Cli;

/// <summary>The <c>twopc</c> command line.</summary>
internal static class Program
{
    /// <summary>Exit code: the command ran and found nothing wrong.</summary>
    public const int ExitClean = 0;

    /// <summary>Exit code: the log has a torn tail that recovery would repair.</summary>
    public const int ExitTornTail = 1;

    /// <summary>Exit code: the log is corrupt and recovery would refuse to start.</summary>
    public const int ExitCorrupt = 2;

    /// <summary>Exit code: bad usage, or the log could not be read.</summary>
    public const int ExitUsageOrIo = 3;

    private static Task<int> Main(string[] args) => RunAsync(args, Console.Out);

    /// <summary>Parses <paramref name="args"/>, runs the command and writes everything to <paramref name="output"/>.</summary>
    internal static async Task<int> RunAsync(string[] args, TextWriter output, CancellationToken cancellationToken = default)
    {
        var root = BuildCommand(output);
        var parseResult = root.Parse(args);
        if (parseResult.Errors.Count > 0)
        {
            foreach (var error in parseResult.Errors)
            {
                await output.WriteLineAsync($"error: {error.Message}").ConfigureAwait(false);
            }

            await output.WriteLineAsync("Run 'twopc --help' for usage.").ConfigureAwait(false);
            return ExitUsageOrIo;
        }

        var configuration = new InvocationConfiguration { Output = output, Error = output };
        return await parseResult.InvokeAsync(configuration, cancellationToken).ConfigureAwait(false);
    }

    private static RootCommand BuildCommand(TextWriter output)
    {
        var directory = new Argument<string>("directory") { Description = "The log directory (holding wal-*.seg and LOCK)." };
        var records = new Option<bool>("--records") { Description = "List every record." };
        var json = new Option<bool>("--json") { Description = "Write the report as JSON." };

        var inspect = new Command("inspect", "Reads a log directory offline and read-only and reports its segments, damage, and what recovery would do. Exit code 0 = clean, 1 = torn tail (recoverable), 2 = corruption (recovery would refuse), 3 = usage or I/O error.");
        inspect.Arguments.Add(directory);
        inspect.Options.Add(records);
        inspect.Options.Add(json);
        inspect.SetAction(parseResult =>
        {
            var path = parseResult.GetValue(directory)!;
            var includeRecords = parseResult.GetValue(records);
            var asJson = parseResult.GetValue(json);
            return Inspect(path, includeRecords, asJson, output);
        });

        var log = new Command("log", "Transaction log (write-ahead log) tools.");
        log.Subcommands.Add(inspect);

        var root = new RootCommand("TwoPC operator tools.");
        root.Subcommands.Add(log);
        return root;
    }

    private static int Inspect(string path, bool includeRecords, bool asJson, TextWriter output)
    {
        LogInspection inspection;
        try
        {
            inspection = LogInspector.Inspect(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            output.WriteLine($"error: {ex.Message}");
            return ExitUsageOrIo;
        }

        if (asJson)
        {
            InspectionReport.WriteJson(inspection, includeRecords, output);
        }
        else
        {
            InspectionReport.WriteText(inspection, includeRecords, output);
        }

        return inspection.ExitCode;
    }
}
