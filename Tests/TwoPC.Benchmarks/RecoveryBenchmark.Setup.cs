using System.Collections.Concurrent;
using System.Globalization;
using Npgsql;
using TwoPC.Participants.PostgreSql;
using TwoPC.Protocol;
using TwoPC.Transactions;
using TwoPC.Wal;

namespace TwoPC.Benchmarks;

/// <summary>
/// The child process of the recovery benchmark (<c>recovery --child ...</c>): a real coordinator over a file WAL and
/// two PostgreSQL resource managers that leaves transactions in doubt, then waits to be SIGKILLed.
/// </summary>
/// <remarks>
/// Every transaction inserts row <c>i</c> into <c>items</c> in both databases and commits. The protocol's step hook
/// (the one the crash tests use) stops each transaction for good at a chosen point: a transaction chosen to have a
/// decision stops right after its commit decision is forced to the log (<c>DecisionLogged</c>, before phase 2
/// tells any branch); the others stop after both branches voted yes (<c>AfterPrepare</c> with k = 2, before any
/// decision). The hook awaits a task that never completes, so no thread is blocked and the commit simply never
/// goes on. When every transaction reached its stop, the child prints <c>READY</c>; the parent then kills it.
/// </remarks>
public static partial class RecoveryBenchmark
{
    private const string NodeId = "recovery-bench";

    private static async Task<int> RunChildAsync(string[] args)
    {
        string Value(string name) => args[Array.IndexOf(args, name) + 1];
        var transactions = int.Parse(Value("--transactions"), CultureInfo.InvariantCulture);
        var undecidedEvery = int.Parse(Value("--undecided-every"), CultureInfo.InvariantCulture);
        var concurrency = int.Parse(Value("--concurrency"), CultureInfo.InvariantCulture);
        await using var a = NpgsqlDataSource.Create(Value("--db-a"));
        await using var b = NpgsqlDataSource.Create(Value("--db-b"));
        using var rmA = await PostgresResourceManager.CreateAsync("pg-a", a);
        using var rmB = await PostgresResourceManager.CreateAsync("pg-b", b);

        var undecided = new ConcurrentDictionary<GlobalTransactionId, bool>();
        var stopped = new ConcurrentDictionary<GlobalTransactionId, TaskCompletionSource>();
        var never = new TaskCompletionSource().Task;
        var options = new TransactionCoordinatorOptions
        {
            NodeId = NodeId,
            DefaultTimeout = TimeSpan.FromMinutes(10),
            MaxTimeout = TimeSpan.FromMinutes(10),
            RecoveryInterval = TimeSpan.FromHours(1),

            // Decisions in the log (the benchmark measures re-driving logged decisions), not in commit markers.
            LastResourceCommit = false,
            StepHook = (step, id, k) =>
            {
                var stopHere = step switch
                {
                    ProtocolStep.DecisionLogged => !undecided.ContainsKey(id),
                    ProtocolStep.AfterPrepare => k == 2 && undecided.ContainsKey(id),
                    _ => false,
                };
                if (!stopHere)
                {
                    return ValueTask.CompletedTask;
                }

                stopped.GetOrAdd(id, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
                return new ValueTask(never);
            },
        };

        var coordinator = new TransactionCoordinator(options, new FileTransactionLog(new FileTransactionLogOptions { Directory = Value("--log") }), [rmA, rmB]);
        await coordinator.StartAsync();
        var next = -1;
        var failures = 0;
        var decided = 0;
        var workers = Enumerable.Range(0, concurrency).Select(_ => Task.Run(async () =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < transactions)
            {
                var tx = coordinator.Begin();
                var reached = stopped.GetOrAdd(tx.Id, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
                if (i % undecidedEvery == 0)
                {
                    undecided[tx.Id] = true;
                }
                else
                {
                    Interlocked.Increment(ref decided);
                }

                foreach (var rm in new[] { rmA, rmB })
                {
                    var branch = await rm.EnlistAsync(tx);
                    await using var insert = new NpgsqlCommand("INSERT INTO items (id, gtrid) VALUES ($1, $2)", branch.Connection, branch.Transaction);
                    insert.Parameters.AddWithValue(i);
                    insert.Parameters.AddWithValue(tx.Id.ToString());
                    await insert.ExecuteNonQueryAsync();
                }

                var commit = tx.CommitAsync();
                if (await Task.WhenAny(commit, reached.Task) == commit)
                {
                    // It ended before its stop (a failed prepare, say): the run is not the one asked for.
                    if (Interlocked.Increment(ref failures) <= 5)
                    {
                        Console.Error.WriteLine($"transaction {tx.Id} ended before its stop: {(commit.IsFaulted ? commit.Exception!.InnerException!.Message : $"{commit.Result.Kind}: {commit.Result.Reason}")}");
                    }
                }
            }
        })).ToArray();
        await Task.WhenAll(workers);
        Console.Out.Write(failures == 0 ? $"READY {decided} {transactions - decided}\n" : $"FAILED {failures}\n");
        Console.Out.Flush();
        await Task.Delay(Timeout.Infinite);
        return 0;
    }
}
