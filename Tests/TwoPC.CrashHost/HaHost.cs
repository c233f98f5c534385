using System.Globalization;
using Microsoft.Extensions.Logging;
using Npgsql;
using TwoPC.Durability.PostgreSql;
using TwoPC.Participants.PostgreSql;
using TwoPC.Protocol;
using TwoPC.Transactions;

namespace TwoPC.CrashHost;

/// <summary>
/// The high-availability scenarios: one coordinator node on the shared PostgreSQL log with two PostgreSQL resource
/// managers (<c>pg-a</c>, <c>pg-b</c>, the same names on every node). It runs transfers (each adds 1 to one
/// <c>items</c> row in both databases), may freeze at a protocol step (to be SIGKILLed or SIGSTOPped), and otherwise
/// stays up, taking over nodes whose lease expired, until it is killed.
/// </summary>
/// <remarks>
/// <c>ha-node --node ID --log CONN --db-a CONN --db-b CONN [--lease-ms 2000] [--renew-ms 500] [--transactions N]
/// [--concurrency C] [--takeover-ms 250] [--crash-step STEP --crash-at N --crash-k K] [--resume-file PATH]</c><br/>
/// With <c>--resume-file</c> the step is a pause, not a crash: the host reports <c>PAUSEPOINT</c>, waits for the file
/// to exist (the test SIGSTOPs and SIGCONTs it meanwhile), then carries on.<br/>
/// Lines: <c>STARTED node epoch</c>, <c>CRASHPOINT</c>/<c>PAUSEPOINT step gtrid</c>, <c>OUTCOME gtrid kind</c>,
/// <c>ERROR gtrid message</c>, <c>DONE</c>, <c>TAKEOVER node</c>, <c>FENCED</c>.
/// </remarks>
internal static class HaHost
{
    public static bool Handles(string[] args) => args.Length > 0 && args[0] == "ha-node";

    public static async Task<int> RunAsync(string[] args, ILoggerFactory loggerFactory)
    {
        var node = NamedArguments.Value(args, "--node");
        var transactions = Int(args, "--transactions", 0);
        await using var a = NpgsqlDataSource.Create(NamedArguments.Value(args, "--db-a"));
        await using var b = NpgsqlDataSource.Create(NamedArguments.Value(args, "--db-b"));
        using var rmA = await PostgresResourceManager.CreateAsync("pg-a", a, loggerFactory: loggerFactory);
        using var rmB = await PostgresResourceManager.CreateAsync("pg-b", b, loggerFactory: loggerFactory);
        var options = new TransactionCoordinatorOptions
        {
            NodeId = node,
            OrphanSafetyInterval = TimeSpan.FromMilliseconds(500),
            RecoveryInterval = TimeSpan.FromMilliseconds(500),
            TakeoverInterval = TimeSpan.FromMilliseconds(Int(args, "--takeover-ms", 250)),
            RetryBaseDelay = TimeSpan.FromMilliseconds(20),
            RetryMaxDelay = TimeSpan.FromMilliseconds(500),

            // The logged protocol unless --lrc: the crash steps of the two protocols differ.
            LastResourceCommit = args.Contains("--lrc"),
        };
        if (NamedArguments.Optional(args, "--crash-step") is { } step)
        {
            var crash = new CrashPoint(Enum.Parse<ProtocolStep>(step, ignoreCase: true), Int(args, "--crash-at", 1), Int(args, "--crash-k", 0));
            options.StepHook = NamedArguments.Optional(args, "--resume-file") is { } resume ? Pause(crash, resume) : crash.OnStepAsync;
        }

        var log = new PostgreSqlTransactionLog(
            new PostgreSqlTransactionLogOptions
            {
                ConnectionString = NamedArguments.Value(args, "--log"),
                LeaseDuration = TimeSpan.FromMilliseconds(Int(args, "--lease-ms", 2000)),
                RenewInterval = TimeSpan.FromMilliseconds(Int(args, "--renew-ms", 500)),
            },
            loggerFactory);
        await using var coordinator = new TransactionCoordinator(options, log, [rmA, rmB], loggerFactory);
        await coordinator.StartAsync();
        Output.Line($"STARTED {node} {coordinator.Epoch}");
        var watch = WatchAsync(coordinator);
        if (transactions > 0)
        {
            await RunTransfersAsync(coordinator, rmA, rmB, transactions, Int(args, "--concurrency", 1));
            Output.Line("DONE");
        }

        await watch; // until killed
        return 0;
    }

    private static async Task RunTransfersAsync(TransactionCoordinator coordinator, PostgresResourceManager rmA, PostgresResourceManager rmB, int count, int concurrency)
    {
        var next = -1;
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(_ => Task.Run(async () =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < count)
            {
                GlobalTransaction tx;
                try
                {
                    tx = coordinator.Begin();
                }
                catch (Exception ex)
                {
                    Output.Line($"ERROR begin {ex.GetType().Name}");
                    await Task.Delay(100);
                    continue;
                }

                try
                {
                    foreach (var rm in new[] { rmA, rmB })
                    {
                        var branch = await rm.EnlistAsync(tx);
                        await using var update = new NpgsqlCommand("UPDATE items SET value = value + 1 WHERE id = $1", branch.Connection, branch.Transaction);
                        update.Parameters.AddWithValue((i % 10) + 1);
                        await update.ExecuteNonQueryAsync();
                    }

                    var outcome = await tx.CommitAsync();
                    Output.Line($"OUTCOME {tx.Id} {outcome.Kind}");
                }
                catch (Exception ex)
                {
                    Output.Line($"ERROR {tx.Id} {ex.GetType().Name}: {ex.Message.ReplaceLineEndings(" ")}");
                    await Task.Delay(50);
                }
            }
        })));
    }

    /// <summary>Reports takeovers and the node's own fencing as they happen.</summary>
    private static async Task WatchAsync(TransactionCoordinator coordinator)
    {
        var reported = new HashSet<NodeId>();
        var fenced = false;
        while (true)
        {
            foreach (var adopted in coordinator.AdoptedNodes.Keys)
            {
                if (reported.Add(adopted))
                {
                    Output.Line($"TAKEOVER {adopted}");
                }
            }

            if (!fenced && coordinator.IsFenced)
            {
                fenced = true;
                Output.Line("FENCED");
            }

            await Task.Delay(50);
        }
    }

    /// <summary>At the crash point's step: report PAUSEPOINT and wait for the resume file instead of freezing forever.</summary>
    private static Func<ProtocolStep, GlobalTransactionId, int, ValueTask> Pause(CrashPoint point, string resumeFile)
    {
        var paused = 0;
        return (step, id, k) =>
        {
            if (!point.Matches(step, k) || Interlocked.Exchange(ref paused, 1) == 1)
            {
                return ValueTask.CompletedTask;
            }

            Output.Line($"PAUSEPOINT {step} {id}");
            while (!File.Exists(resumeFile))
            {
                Thread.Sleep(20); // synchronous, like the crash point: nothing after the step runs meanwhile
            }

            return ValueTask.CompletedTask;
        };
    }

    private static int Int(string[] args, string name, int fallback) =>
        NamedArguments.Optional(args, name) is { } value ? int.Parse(value, CultureInfo.InvariantCulture) : fallback;
}
