using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using Microsoft.Extensions.Logging;
using TwoPC.CrashHost;
using TwoPC.Durability;
using TwoPC.Protocol;
using TwoPC.Testing;
using TwoPC.Wal;

// The crash host: a coordinator over a FileTransactionLog and FileResourceManagers, in its own process,
// so the crash tests can SIGKILL it at a named protocol step and restart it on the same log.
// Protocol lines go to stdout, one per line; diagnostics and logs go to stderr.
//   STARTED <epoch>                      the coordinator started (recovery at start-up done)
//   CRASHPOINT <step> <gtrid>            the crash point was reached; the process froze there
//   OUTCOME <gtrid> <kind>               CommitAsync returned this outcome to the caller
//   ERROR <gtrid> <exception>            CommitAsync threw
//   LOGFAILED <gtrid>                    run --fail-log-at: the injected log failure hit this decision (durable)
//   FAILSTOPPED                          run --fail-log-at: every worker stopped; waiting to be killed
//   DONE                                 run: every transaction finished without reaching the crash point
//   INDOUBT <what>                       recover: still unresolved when giving up
//   HEURISTIC <gtrid> <kind>             recover: a heuristic outcome is on record
//   RECOVERED                            recover: nothing prepared is left and no decision is being driven
//   pg-run / pg-recover: the PostgreSQL scenarios, see PostgresHost.cs.
//   mq-run / mq-recover / inbox-consume: the RabbitMQ scenarios, see RabbitMqHost.cs.
//   ha-node: a coordinator node on the shared PostgreSQL log (high availability), see HaHost.cs.
// Exit codes: 0 success, 1 unexpected failure (or ERROR lines in run), 2 usage, 3 recovery did not finish.
if (HaHost.Handles(args))
{
    using var haLoggerFactory = LoggerFactory.Create(builder => builder
        .SetMinimumLevel(LogLevel.Information)
        .AddFilter("Npgsql", LogLevel.Warning)
        .AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace));
    return await HaHost.RunAsync(args, haLoggerFactory);
}

if (PostgresHost.Handles(args) || RabbitMqHost.Handles(args))
{
    using var pgLoggerFactory = LoggerFactory.Create(builder => builder
        .SetMinimumLevel(LogLevel.Warning)
        .AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace));
    return PostgresHost.Handles(args)
        ? await PostgresHost.RunAsync(args, pgLoggerFactory)
        : await RabbitMqHost.RunAsync(args, pgLoggerFactory);
}

HostArguments arguments;
try
{
    arguments = HostArguments.Parse(args);
}
catch (FormatException ex)
{
    await Console.Error.WriteLineAsync(ex.Message + "\n" + HostArguments.Usage);
    return 2;
}

using var loggerFactory = LoggerFactory.Create(builder => builder
    .SetMinimumLevel(Environment.GetEnvironmentVariable("TWOPC_CRASH_LOG_LEVEL") is { } level && Enum.TryParse<LogLevel>(level, true, out var parsed) ? parsed : LogLevel.Warning)
    .AddSimpleConsole(o => o.SingleLine = true)
    .AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace));

try
{
    return arguments.Mode == "run"
        ? await Host.RunAsync(arguments, loggerFactory)
        : await Host.RecoverAsync(arguments, loggerFactory);
}
catch (Exception ex)
{
    await Console.Error.WriteLineAsync("crash host failed: " + ex);
    return 1;
}

internal static class Host
{
    private static readonly TimeSpan OrphanSafetyInterval = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan RecoveryLimit = TimeSpan.FromSeconds(20);

    public static async Task<int> RunAsync(HostArguments a, ILoggerFactory loggerFactory)
    {
        // The plan is a function of the seed alone: which transactions get a No vote, and from whom.
        var random = new Random(a.Seed);
        var noVoter = new int[a.Transactions];
        for (var i = 0; i < noVoter.Length; i++)
        {
            noVoter[i] = random.NextDouble() < a.NoVoteProbability ? random.Next(a.Participants) : -1;
        }

        var scriptedNo = new ConcurrentDictionary<string, int>(StringComparer.Ordinal);
        var (coordinator, participants) = await StartAsync(a, loggerFactory);
        for (var j = 0; j < participants.Length; j++)
        {
            var index = j;
            participants[j].VoteNo = xid => scriptedNo.TryGetValue(xid.GlobalId, out var voter) && voter == index;
        }

        var begun = new BegunFile(a.BegunFile);
        var next = -1;
        var errors = 0;
        var workers = new Task[Math.Min(a.Concurrency, Math.Max(1, a.Transactions))];
        for (var w = 0; w < workers.Length; w++)
        {
            workers[w] = Task.Run(async () =>
            {
                int i;
                while ((i = Interlocked.Increment(ref next)) < a.Transactions)
                {
                    GlobalTransaction tx;
                    try
                    {
                        tx = coordinator.Begin();
                    }
                    catch (TransactionLogFailedException) when (a.FailLogAt > 0)
                    {
                        // The injected log failure: a fail-stopped coordinator begins nothing more.
                        break;
                    }

                    var gtrid = tx.Id.ToString();

                    // Durable before any branch of it can exist, so the test knows every transaction.
                    begun.Append(gtrid);
                    if (noVoter[i] >= 0)
                    {
                        scriptedNo[gtrid] = noVoter[i];
                    }

                    for (var j = 0; j < participants.Length; j++)
                    {
                        var rm = participants[j];
                        var value = $"tx{i}-rm{j}-seed{a.Seed}";
                        if (j == 0 || a.Shape == "all")
                        {
                            tx.Enlist(xid => rm.CreateBranch(xid, value));
                        }
                        else if (a.Shape == "single-yes")
                        {
                            tx.Enlist(rm.CreateReadOnlyBranch);
                        }
                    }

                    try
                    {
                        var outcome = await tx.CommitAsync();
                        Output.Line($"OUTCOME {gtrid} {outcome.Kind}");
                    }
                    catch (Exception ex)
                    {
                        Interlocked.Increment(ref errors);
                        Output.Line($"ERROR {gtrid} {ex.GetType().Name}: {ex.Message.ReplaceLineEndings(" ")}");
                    }
                }
            });
        }

        await Task.WhenAll(workers);
        if (a.FailLogAt > 0 && errors > 0)
        {
            // After the injected log failure the coordinator waits, fail-stopped, for its restart:
            // the test lets its periodic recovery run for a while, then kills it.
            Output.Line("FAILSTOPPED");
            await Task.Delay(Timeout.Infinite);
        }

        Output.Line("DONE");
        await coordinator.DisposeAsync();
        begun.Dispose();
        return errors == 0 ? 0 : 1;
    }

    public static async Task<int> RecoverAsync(HostArguments a, ILoggerFactory loggerFactory)
    {
        var elapsed = Stopwatch.StartNew();
        var (coordinator, participants) = await StartAsync(a, loggerFactory);
        while (true)
        {
            var prepared = participants.SelectMany(p => FileResourceManager.ReadStates(p.Directory)
                .Where(s => s.Value == TestBranchState.Prepared)
                .Select(s => $"{p.Name}/{s.Key}.prepared")).ToList();
            if (prepared.Count == 0 && coordinator.RecoveringTransactions == 0)
            {
                break;
            }

            if (elapsed.Elapsed > RecoveryLimit)
            {
                foreach (var what in prepared)
                {
                    Output.Line("INDOUBT " + what);
                }

                Output.Line($"INDOUBT recovering-transactions={coordinator.RecoveringTransactions}");
                await Console.Error.WriteLineAsync($"recovery did not finish within {RecoveryLimit}");
                return 3;
            }

            // Orphans become eligible for presumed abort once they are older than the safety interval.
            await Task.Delay(OrphanSafetyInterval + TimeSpan.FromMilliseconds(50));
            try
            {
                await coordinator.RecoverAsync();
            }
            catch (Exception ex)
            {
                await Console.Error.WriteLineAsync("recovery pass failed: " + ex);
            }
        }

        foreach (var heuristic in coordinator.GetHeuristics())
        {
            Output.Line($"HEURISTIC {heuristic.TransactionId} {heuristic.Kind}");
        }

        await coordinator.DisposeAsync();
        Output.Line("RECOVERED");
        return 0;
    }

    private static async Task<(TransactionCoordinator Coordinator, FileResourceManager[] Participants)> StartAsync(HostArguments a, ILoggerFactory loggerFactory)
    {
        var options = new TransactionCoordinatorOptions
        {
            NodeId = "crash-node",
            DefaultTimeout = TimeSpan.FromSeconds(30),
            OrphanSafetyInterval = OrphanSafetyInterval,
            RecoveryInterval = TimeSpan.FromMilliseconds(250),
            RetryBaseDelay = TimeSpan.FromMilliseconds(10),
            RetryMaxDelay = TimeSpan.FromMilliseconds(200),
            BranchCallTimeout = TimeSpan.FromSeconds(5),
        };
        if (a.CrashStep is { } step)
        {
            options.StepHook = new CrashPoint(step, a.CrashAt, a.CrashIndex).OnStepAsync;
        }

        var participants = new FileResourceManager[a.Participants];
        for (var i = 0; i < participants.Length; i++)
        {
            participants[i] = new FileResourceManager(HostArguments.ParticipantName(i), a.ParticipantDirectory(i)) { CommitsAtomically = a.Atomic };
        }

        var logOptions = new FileTransactionLogOptions { Directory = a.LogDirectory };
        if (a.SegmentSize is { } segmentSize)
        {
            logOptions.SegmentSize = segmentSize;
        }

        ITransactionLog log = new FileTransactionLog(logOptions, loggerFactory.CreateLogger<FileTransactionLog>());
        if (a.FailLogAt > 0)
        {
            log = new FaultInjectingLog(log, a.FailLogAt);
        }

        var coordinator = new TransactionCoordinator(options, log, participants, loggerFactory);
        await coordinator.StartAsync();
        Output.Line($"STARTED {coordinator.Epoch}");
        return (coordinator, participants);
    }
}

/// <summary>Appends one gtrid a line, fsynced before it returns.</summary>
internal sealed class BegunFile(string path) : IDisposable
{
    private readonly FileStream _stream = new(path, FileMode.Append, FileAccess.Write, FileShare.Read);
    private readonly Lock _gate = new();

    public void Append(string gtrid)
    {
        var bytes = Encoding.ASCII.GetBytes(gtrid + "\n");
        lock (_gate)
        {
            _stream.Write(bytes);
            _stream.Flush(flushToDisk: true);
        }
    }

    public void Dispose() => _stream.Dispose();
}
