using System.CommandLine;
using TwoPC.Wal;

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
    /// <remarks>The <c>tx</c> commands have their own codes (see <see cref="TxCommands"/>): usage is 2 there.</remarks>
    public const int ExitUsageOrIo = 3;

    private static Task<int> Main(string[] args) => RunAsync(args, Console.Out, Console.Error);

    /// <summary>Parses <paramref name="args"/>, runs the command and writes everything to <paramref name="output"/>.</summary>
    internal static Task<int> RunAsync(string[] args, TextWriter output, CancellationToken cancellationToken = default) =>
        RunAsync(args, output, output, cancellationToken);

    /// <summary>Parses <paramref name="args"/>, runs the command, writes results to <paramref name="output"/> and errors to <paramref name="error"/>.</summary>
    internal static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error, CancellationToken cancellationToken = default)
    {
        var root = BuildCommand(output, error);
        var parseResult = root.Parse(args);
        if (parseResult.Errors.Count > 0)
        {
            foreach (var parseError in parseResult.Errors)
            {
                await error.WriteLineAsync($"error: {parseError.Message}").ConfigureAwait(false);
            }

            await error.WriteLineAsync("Run 'twopc --help' for usage.").ConfigureAwait(false);
            return TxCommands.IsTxCommand(parseResult.CommandResult.Command) ? TxCommands.ExitUsage : ExitUsageOrIo;
        }

        var configuration = new InvocationConfiguration { Output = output, Error = error };
        return await parseResult.InvokeAsync(configuration, cancellationToken).ConfigureAwait(false);
    }

    private static RootCommand BuildCommand(TextWriter output, TextWriter error)
    {
        var directory = new Argument<string>("directory") { Description = "The log directory (holding MANIFEST, wal-*.seg and LOCK)." };
        var records = new Option<bool>("--records") { Description = "List every record." };
        var json = new Option<bool>("--json") { Description = "Write the report as JSON." };

        var inspect = new Command("inspect", "Reads a log directory offline and read-only and reports its segments, damage, and what recovery would do. Exit code 0 = clean, 1 = torn tail or leftover files (recovery repairs them), 2 = corruption, a missing or damaged manifest or segment, or another format version (recovery would refuse), 3 = usage or I/O error.");
        inspect.Arguments.Add(directory);
        inspect.Options.Add(records);
        inspect.Options.Add(json);
        inspect.SetAction(parseResult =>
        {
            var path = parseResult.GetValue(directory)!;
            var includeRecords = parseResult.GetValue(records);
            var asJson = parseResult.GetValue(json);
            return Inspect(path, includeRecords, asJson, output, error);
        });

        var log = new Command("log", "Transaction log (write-ahead log) tools.");
        log.Subcommands.Add(inspect);

        var root = new RootCommand("TwoPC operator tools: 'log inspect' reads a log directory offline; 'tx' talks to a running coordinator server. Exit code 0 always means done; see 'twopc log inspect --help' and 'twopc tx --help' for the others.");
        root.Subcommands.Add(log);
        root.Subcommands.Add(TxCommands.Build(output, error));
        return root;
    }

    private static int Inspect(string path, bool includeRecords, bool asJson, TextWriter output, TextWriter error)
    {
        TransactionLogInspection inspection;
        try
        {
            inspection = TransactionLogInspector.Inspect(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            error.WriteLine($"error: {ex.Message}");
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

        return InspectionReport.ExitCode(inspection);
    }
}
