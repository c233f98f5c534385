using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Npgsql;
using TwoPC.Participants.PostgreSql;
using TwoPC.Protocol;
using TwoPC.Transactions;
using TwoPC.Wal;

namespace TwoPC.CrashHost;

/// <summary>
/// The PostgreSQL crash scenarios: one global transaction updating <c>items</c> row 1 in two databases,
/// killed at a protocol step (<c>pg-run</c>), then a fresh process on the same log resolving what the
/// databases hold prepared (<c>pg-recover</c>).
/// </summary>
/// <remarks>
/// <c>pg-run --log DIR --db-a CONN --db-b CONN [--db-c CONN] [--lrc] [--crash-step STEP --crash-at N --crash-k K] [--crash-between-insert-and-commit]</c><br/>
/// <c>pg-recover --log DIR --db-a CONN --db-b CONN [--db-c CONN] [--lrc] [--crash-step AfterFence]</c><br/>
/// <c>--node ID</c> sets the node id (default <c>pg-crash</c>; prepared gids are unique per server, so tests sharing one use
/// their own); <c>--lrc</c> turns the last-resource commit on (A, enlisted first, is the last resource); <c>--db-c</c> adds a third
/// database (a second prepared branch); <c>--crash-between-insert-and-commit</c> freezes (CRASHPOINT
/// BetweenInsertAndCommit) with A's marker inserted and not committed.
/// </remarks>
internal static class PostgresHost
{
    private static readonly TimeSpan OrphanSafetyInterval = TimeSpan.FromMilliseconds(300);

    public static bool Handles(string[] args) => args.Length > 0 && args[0] is "pg-run" or "pg-recover";

    public static async Task<int> RunAsync(string[] args, ILoggerFactory loggerFactory)
    {
        var options = Options(args);
        var log = NamedArguments.Value(args, "--log");
        await using var a = NpgsqlDataSource.Create(NamedArguments.Value(args, "--db-a"));
        await using var b = NpgsqlDataSource.Create(NamedArguments.Value(args, "--db-b"));
        await using var c = NamedArguments.Optional(args, "--db-c") is { } cConnection ? NpgsqlDataSource.Create(cConnection) : null;
        using var rmA = await PostgresResourceManager.CreateAsync("pg-a", a, loggerFactory: loggerFactory);
        using var rmB = await PostgresResourceManager.CreateAsync("pg-b", b, loggerFactory: loggerFactory);
        using var rmC = c is null ? null : await PostgresResourceManager.CreateAsync("pg-c", c, loggerFactory: loggerFactory);
        PostgresResourceManager[] rms = rmC is null ? [rmA, rmB] : [rmA, rmB, rmC];
        if (args.Contains("--crash-between-insert-and-commit"))
        {
            rmA.BetweenMarkerInsertAndCommit = branch =>
            {
                Output.Line($"CRASHPOINT BetweenInsertAndCommit {branch.Xid.GlobalId}");
                Thread.Sleep(Timeout.Infinite);
                return ValueTask.CompletedTask;
            };
        }

        var coordinatorOptions = new TransactionCoordinatorOptions
        {
            NodeId = NamedArguments.Optional(args, "--node") ?? "pg-crash",
            LastResourceCommit = args.Contains("--lrc"),
            OrphanSafetyInterval = OrphanSafetyInterval,
            RecoveryInterval = TimeSpan.FromMilliseconds(250),
            RetryBaseDelay = TimeSpan.FromMilliseconds(20),
            RetryMaxDelay = TimeSpan.FromMilliseconds(200),
        };
        if (options.Step is { } step)
        {
            coordinatorOptions.StepHook = new CrashPoint(step, options.At, options.K).OnStepAsync;
        }

        var coordinator = new TransactionCoordinator(coordinatorOptions, new FileTransactionLog(new FileTransactionLogOptions { Directory = log }), rms, loggerFactory);
        await coordinator.StartAsync();
        Output.Line($"STARTED {coordinator.Epoch}");
        try
        {
            return args[0] == "pg-run" ? await RunOneAsync(coordinator, rms) : await RecoverAsync(coordinator, c is null ? [a, b] : [a, b, c]);
        }
        finally
        {
            await coordinator.DisposeAsync();
        }
    }

    private static async Task<int> RunOneAsync(TransactionCoordinator coordinator, PostgresResourceManager[] rms)
    {
        var tx = coordinator.Begin();
        Output.Line($"BEGUN {tx.Id}");
        foreach (var rm in rms)
        {
            var branch = await rm.EnlistAsync(tx);
            await using var update = new NpgsqlCommand("UPDATE items SET value = value + 1 WHERE id = 1", branch.Connection, branch.Transaction);
            await update.ExecuteNonQueryAsync();
        }

        var outcome = await tx.CommitAsync();
        Output.Line($"OUTCOME {tx.Id} {outcome.Kind}");
        Output.Line("DONE");
        return 0;
    }

    private static async Task<int> RecoverAsync(TransactionCoordinator coordinator, NpgsqlDataSource[] databases)
    {
        var elapsed = Stopwatch.StartNew();
        var prefix = Xid.PrefixFor(coordinator.NodeId);
        while (true)
        {
            var prepared = 0L;
            foreach (var database in databases)
            {
                prepared += await PreparedAsync(database, prefix);
            }

            if (prepared == 0 && coordinator.RecoveringTransactions == 0)
            {
                // What recovery concluded about branches it re-drove: a heuristic here is what an operator would see.
                foreach (var heuristic in coordinator.GetHeuristics())
                {
                    Output.Line($"HEURISTIC {heuristic.TransactionId} {heuristic.Kind}");
                }

                Output.Line("RECOVERED");
                return 0;
            }

            if (elapsed.Elapsed > TimeSpan.FromSeconds(30))
            {
                Output.Line($"INDOUBT prepared={prepared} recovering={coordinator.RecoveringTransactions}");
                return 3;
            }

            await Task.Delay(OrphanSafetyInterval);
            await coordinator.RecoverAsync();
        }
    }

    private static async Task<long> PreparedAsync(NpgsqlDataSource dataSource, string prefix)
    {
        await using var command = dataSource.CreateCommand("SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database() AND starts_with(gid, $1)");
        command.Parameters.AddWithValue(prefix);
        return (long)(await command.ExecuteScalarAsync())!;
    }

    private static (ProtocolStep? Step, int At, int K) Options(string[] args)
    {
        var step = NamedArguments.Optional(args, "--crash-step") is { } s ? Enum.Parse<ProtocolStep>(s, ignoreCase: true) : (ProtocolStep?)null;
        var at = NamedArguments.Optional(args, "--crash-at") is { } n ? int.Parse(n, System.Globalization.CultureInfo.InvariantCulture) : 1;
        var k = NamedArguments.Optional(args, "--crash-k") is { } kk ? int.Parse(kk, System.Globalization.CultureInfo.InvariantCulture) : 0;
        return (step, at, k);
    }
}
