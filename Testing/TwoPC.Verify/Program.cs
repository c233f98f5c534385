using System.CommandLine;
using System.Globalization;
using TwoPC.TestServers;

namespace TwoPC.Verify;

/// <summary>The <c>twopc-verify</c> command line: <c>run</c> (the checker) and the hidden <c>worker</c> and <c>consumer</c> processes it starts.</summary>
internal static class Program
{
    public const int ExitPassed = 0;
    public const int ExitViolation = 1;
    public const int ExitSetupFailed = 2;

    private static readonly string[] AllFaults = ["coordinator", "consumer", "postgres", "broker"];

    private static Task<int> Main(string[] args) => BuildCommand().Parse(args).InvokeAsync();

    private static RootCommand BuildCommand()
    {
        var duration = new Option<int>("--duration") { Description = "Seconds of transfers under faults (then heal and check). Default 60.", DefaultValueFactory = _ => 60 };
        var seed = new Option<int?>("--seed") { Description = "Replays a run's choices (transfers and faults). Default: random, printed." };
        var databases = new Option<string[]>("--db") { Description = "A PostgreSQL connection string (twice or more; the checker owns schema twopc_verify in each). Default: private servers it starts.", AllowMultipleArgumentsPerToken = false };
        var amqp = new Option<string?>("--amqp") { Description = "The RabbitMQ URI. Default: a private node it starts." };
        var faults = new Option<string>("--faults") { Description = "Comma-separated faults to inject: coordinator, consumer, postgres, broker (the last two only on servers it started). Default: all that apply.", DefaultValueFactory = _ => "all" };
        var interval = new Option<string>("--fault-interval") { Description = "Seconds between faults, min-max. Default 2-6.", DefaultValueFactory = _ => "2-6" };
        var concurrency = new Option<int>("--concurrency") { Description = "Concurrent transfers. Default 8.", DefaultValueFactory = _ => 8 };
        var accounts = new Option<int>("--accounts") { Description = "Accounts, spread over the databases. Default 16.", DefaultValueFactory = _ => 16 };
        var json = new Option<bool>("--json") { Description = "Write the report as JSON." };
        var historyFile = new Option<string?>("--history") { Description = "Write every operation, line and fault to this file (JSON lines). Default: history.jsonl in the work directory." };
        var requireFaults = new Option<int>("--require-faults") { Description = "Inject at least this many faults: the run goes on past --duration (up to three times it) until they are in, and fails with exit code 2 if they are not, so a short CI run cannot pass without exercising recovery. Default 0." };
        var lastResourceCommit = new Option<string?>("--last-resource-commit") { Description = "on or off: the workers' TwoPC:LastResourceCommit (on: the first database's COMMIT with a commit marker is the decision, the other database and the broker are prepared). Default: not set, the library's default." };
        lastResourceCommit.AcceptOnlyFromAmong("on", "off");
        var work = new Option<string?>("--work-dir") { Description = "Where the coordinator log, the history and the processes' logs live. Default: a new temporary directory. (Private servers live where TwoPC.TestServers puts them.)" };

        var root = new RootCommand("Jepsen-style bank checker for TwoPC: transfers across PostgreSQL databases and RabbitMQ under SIGKILLs and restarts, then checks all-or-nothing, durability and exactly-once consumption. Exit code 0 = every check holds, 1 = a violation, 2 = the run could not be set up.");
        foreach (Option option in new Option[] { duration, seed, databases, amqp, faults, interval, concurrency, accounts, json, historyFile, requireFaults, lastResourceCommit, work })
        {
            root.Options.Add(option);
        }

        root.SetAction(async (parse, ct) =>
        {
            var range = parse.GetValue(interval)!.Split('-');
            if (range.Length != 2 || !double.TryParse(range[0], CultureInfo.InvariantCulture, out var min) || !double.TryParse(range[1], CultureInfo.InvariantCulture, out var max) || min <= 0 || max < min)
            {
                await Console.Error.WriteLineAsync("error: --fault-interval takes min-max seconds, for example 2-6.");
                return ExitSetupFailed;
            }

            return await RunAsync(new RunArguments(parse.GetValue(duration), parse.GetValue(seed) ?? Random.Shared.Next(1, 1_000_000), parse.GetValue(databases) ?? [],
                parse.GetValue(amqp), parse.GetValue(faults)!, TimeSpan.FromSeconds(min), TimeSpan.FromSeconds(max), parse.GetValue(concurrency), parse.GetValue(accounts),
                parse.GetValue(json), parse.GetValue(historyFile), parse.GetValue(requireFaults), OnOff(parse.GetValue(lastResourceCommit)), parse.GetValue(work)), ct);
        });

        root.Subcommands.Add(WorkerCommand());
        root.Subcommands.Add(ConsumerCommand());
        return root;
    }

    private static async Task<int> RunAsync(RunArguments arguments, CancellationToken cancellationToken)
    {
        var output = arguments.Json ? Console.Error : Console.Out; // progress goes to stderr when stdout carries JSON
        var workDirectory = arguments.WorkDirectory ?? Directory.CreateTempSubdirectory("twopc-verify-").FullName;
        Directory.CreateDirectory(workDirectory);
        var servers = new List<PostgresServer>();
        RabbitMqServer? broker = null;
        try
        {
            var databases = arguments.Databases;
            if (databases.Length == 1)
            {
                await Console.Error.WriteLineAsync("error: give --db twice or more (the bank spans databases), or none to start private servers.");
                return ExitSetupFailed;
            }

            if (databases.Length == 0)
            {
                output.WriteLine("starting two private PostgreSQL servers…");
                for (var i = 0; i < 2; i++)
                {
                    var server = await PostgresServer.StartAsync(new PostgresServerOptions { MaxPreparedTransactions = 100 }, cancellationToken);
                    servers.Add(server);
                }

                databases = [.. servers.Select(s => s.ConnectionString())];
            }

            Uri amqp;
            if (arguments.Amqp is null)
            {
                output.WriteLine("starting a private RabbitMQ node…");
                broker = await RabbitMqServer.StartAsync(new RabbitMqServerOptions(), cancellationToken);
                amqp = broker.AmqpUri;
            }
            else
            {
                amqp = new Uri(arguments.Amqp);
            }

            var applicable = AllFaults.Where(f => f switch { "postgres" => servers.Count > 0, "broker" => broker is not null, _ => true }).ToList();
            var chosen = arguments.Faults == "all" ? applicable : [.. arguments.Faults.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)];
            if (chosen.FirstOrDefault(f => !applicable.Contains(f)) is { } bad)
            {
                await Console.Error.WriteLineAsync($"error: fault '{bad}' cannot be injected here (known: {string.Join(", ", AllFaults)}; postgres and broker only on servers the checker started).");
                return ExitSetupFailed;
            }

            var settings = new RunSettings
            {
                Databases = databases,
                Amqp = amqp,
                WorkDirectory = workDirectory,
                Duration = TimeSpan.FromSeconds(arguments.Duration),
                Seed = arguments.Seed,
                Concurrency = arguments.Concurrency,
                Accounts = arguments.Accounts,
                MinFaultInterval = arguments.MinInterval,
                MaxFaultInterval = arguments.MaxInterval,
                Faults = chosen,
                MinimumFaults = arguments.RequireFaults,
                LastResourceCommit = arguments.LastResourceCommit,
            };
            var historyPath = arguments.History ?? Path.Combine(workDirectory, "history.jsonl");
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"running {arguments.Duration} s with seed {arguments.Seed}, faults: {(chosen.Count == 0 ? "none" : string.Join(", ", chosen))}, last-resource commit: {settings.LastResourceCommitText}; history: {historyPath}"));
            using var history = new History(historyPath);
            history.OnStart(settings);
            var verifier = new Verifier(settings, history, servers, broker, output);
            var (checks, final) = await verifier.RunAsync(cancellationToken);
            var report = new Report(settings, history.Operations, verifier.Faults, verifier.Elapsed, final, checks);
            if (arguments.Json)
            {
                report.WriteJson(Console.Out);
            }
            else
            {
                report.WriteText(Console.Out);
            }

            if (!report.Passed)
            {
                return ExitViolation;
            }

            if (verifier.Faults.Count < arguments.RequireFaults)
            {
                await Console.Error.WriteLineAsync($"error: only {verifier.Faults.Count} faults were injected, fewer than --require-faults {arguments.RequireFaults}: run longer or with a shorter --fault-interval.");
                return ExitSetupFailed;
            }

            return ExitPassed;
        }
        catch (Exception ex) when (ex is InvalidOperationException or TestServerException or Npgsql.NpgsqlException or RabbitMQ.Client.Exceptions.BrokerUnreachableException or UriFormatException)
        {
            await Console.Error.WriteLineAsync($"error: the run could not be set up or completed: {ex.Message}");
            return ExitSetupFailed;
        }
        finally
        {
            if (broker is not null)
            {
                await broker.DisposeAsync();
            }

            foreach (var server in servers)
            {
                await server.DisposeAsync();
            }
        }
    }

    private static Command WorkerCommand()
    {
        var databases = new Option<string[]>("--db") { Required = true };
        var amqp = new Option<string>("--amqp") { Required = true };
        var log = new Option<string>("--log") { Required = true };
        var seed = new Option<int>("--seed");
        var incarnation = new Option<int>("--incarnation");
        var concurrency = new Option<int>("--concurrency") { DefaultValueFactory = _ => 8 };
        var accounts = new Option<int>("--accounts") { DefaultValueFactory = _ => 16 };
        var timeout = new Option<int>("--timeout") { DefaultValueFactory = _ => 5 };
        var recoverOnly = new Option<bool>("--recover-only");
        var lastResourceCommit = new Option<string?>("--last-resource-commit");
        lastResourceCommit.AcceptOnlyFromAmong("on", "off");
        var command = new Command("worker", "The application under test (started by the checker).") { Hidden = true };
        foreach (Option option in new Option[] { databases, amqp, log, seed, incarnation, concurrency, accounts, timeout, recoverOnly, lastResourceCommit })
        {
            command.Options.Add(option);
        }

        command.SetAction((parse, ct) => new BankWorker(new WorkerSettings(parse.GetValue(databases)!, new Uri(parse.GetValue(amqp)!), parse.GetValue(log)!,
            parse.GetValue(seed), parse.GetValue(incarnation), parse.GetValue(concurrency), parse.GetValue(accounts), parse.GetValue(timeout), parse.GetValue(recoverOnly), OnOff(parse.GetValue(lastResourceCommit)))).RunAsync(ct));
        return command;
    }

    private static Command ConsumerCommand()
    {
        var database = new Option<string>("--db") { Required = true };
        var amqp = new Option<string>("--amqp") { Required = true };
        var command = new Command("consumer", "The exactly-once consumer under test (started by the checker).") { Hidden = true };
        command.Options.Add(database);
        command.Options.Add(amqp);
        command.SetAction((parse, ct) => BankConsumer.RunAsync(parse.GetValue(database)!, new Uri(parse.GetValue(amqp)!), ct));
        return command;
    }

    /// <summary>"on" → true, "off" → false, not given → null (the library's default).</summary>
    private static bool? OnOff(string? value) => value is null ? null : value == "on";

    private sealed record RunArguments(int Duration, int Seed, string[] Databases, string? Amqp, string Faults, TimeSpan MinInterval, TimeSpan MaxInterval,
        int Concurrency, int Accounts, bool Json, string? History, int RequireFaults, bool? LastResourceCommit, string? WorkDirectory);
}
