using System.Diagnostics;
using System.Globalization;
using System.Text;
using Dapper;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using TwoPC.Hosting;
using TwoPC.Participants.PostgreSql;
using TwoPC.Participants.RabbitMq;
using TwoPC.Protocol;
using TwoPC.Transactions;

namespace TwoPC.Verify;

/// <summary>
/// The application under test, in a process of its own so that the checker can SIGKILL it: an embedded coordinator
/// (public API only: <c>AddTwoPhaseCommit</c>, <c>EnlistAsync</c>, <c>Publish</c>, <c>CommitAsync</c>) running
/// concurrent transfers, each one global transaction — a debit in one database, a credit in another, a transfer row in
/// both, one published message. It reports every operation on stdout, one line each, before and after:
/// <c>invoke {op} {from} {to} {amount}</c>, then <c>ok {op} {outcome} {transaction}</c> or <c>unknown {op} {reason}</c>.
/// With <c>--recover-only</c> it starts on the log, lets recovery finish every decision, and reports what is left.
/// </summary>
internal sealed class BankWorker(WorkerSettings settings)
{
    private static readonly Stopwatch SinceStart = Stopwatch.StartNew();
    private readonly Lock _output = new();

    public async Task<int> RunAsync(CancellationToken cancellationToken)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["TwoPC:NodeId"] = "twopc-verify",
            ["TwoPC:LogDirectory"] = settings.LogDirectory,
            ["TwoPC:RecoveryInterval"] = "00:00:01",
            ["TwoPC:RetryMaxDelay"] = "00:00:01",
            // Prepared branches with no decision are rolled back once older than this; it must exceed the transaction timeout.
            ["TwoPC:OrphanSafetyInterval"] = TimeSpan.FromSeconds(settings.TimeoutSeconds * 2 + 2).ToString("c", CultureInfo.InvariantCulture),
        });
        if (settings.LastResourceCommit is { } lastResourceCommit)
        {
            builder.Configuration["TwoPC:LastResourceCommit"] = lastResourceCommit ? "true" : "false";
        }

        builder.Logging.ClearProviders();
        // Logs go to stderr (the checker keeps them in a file): stdout carries only the operation lines.
        builder.Logging.AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        builder.Logging.SetMinimumLevel(LogLevel.Warning);

        // Each database and the broker is a resource manager registered by name (a keyed service); the data sources are
        // built and disposed by the host's container, and every resource manager logs through the host's logging.
        var twoPc = builder.Services.AddTwoPhaseCommit(builder.Configuration.GetSection("TwoPC"));
        var banks = settings.Databases.Select((_, i) => "bank-" + i.ToString(CultureInfo.InvariantCulture)).ToArray();
        for (var i = 0; i < banks.Length; i++)
        {
            twoPc.AddPostgres(banks[i], settings.Databases[i]);
        }

        twoPc.AddRabbitMq("bank-events", settings.Amqp);

        using var host = builder.Build();
        using var lastResource = new LastResourceCounters(Report);
        try
        {
            await host.StartAsync(cancellationToken);
            var coordinator = host.Services.GetRequiredService<TransactionCoordinator>();
            Report($"ready {settings.Incarnation} {SinceStart.ElapsedMilliseconds}");
            return settings.RecoverOnly
                ? await FinishRecoveryAsync(coordinator, lastResource, cancellationToken)
                : await TransferAsync(
                    coordinator,
                    [.. banks.Select(host.Services.GetRequiredKeyedService<PostgresResourceManager>)],
                    host.Services.GetRequiredKeyedService<RabbitMqResourceManager>("bank-events"),
                    cancellationToken);
        }
        finally
        {
            await host.StopAsync(CancellationToken.None);
        }
    }

    private async Task<int> TransferAsync(TransactionCoordinator coordinator, PostgresResourceManager[] banks, RabbitMqResourceManager events, CancellationToken cancellationToken)
    {
        var next = 0L;
        var workers = Enumerable.Range(0, settings.Concurrency).Select(async worker =>
        {
            var random = new Random(HashCode.Combine(settings.Seed, settings.Incarnation, worker));
            while (!cancellationToken.IsCancellationRequested)
            {
                var op = string.Create(CultureInfo.InvariantCulture, $"{settings.Incarnation}.{Interlocked.Increment(ref next)}");
                if (!await TransferOnceAsync(coordinator, banks, events, op, random))
                {
                    // A failed transfer (a database or the broker down) is retried after a pause, as a client would,
                    // rather than in a hot loop that only counts rollbacks.
                    await Task.Delay(TimeSpan.FromMilliseconds(100 + random.Next(200)), CancellationToken.None);
                }
            }
        });
        await Task.WhenAll(workers);
        return 0;
    }

    /// <returns>False when the transfer failed for another reason than its designed No vote.</returns>
    private async Task<bool> TransferOnceAsync(TransactionCoordinator coordinator, PostgresResourceManager[] banks, RabbitMqResourceManager events, string op, Random random)
    {
        var databases = banks.Length;
        var from = random.Next(settings.Accounts);
        int to;
        do
        {
            to = random.Next(settings.Accounts);
        }
        while (Bank.DatabaseOf(to, databases) == Bank.DatabaseOf(from, databases));

        // One transfer in ten is designed to vote No: more than any balance, refused at PREPARE by the deferred check.
        var amount = random.Next(10) == 0 ? Bank.ImpossibleAmount : 1 + random.Next(50);
        Report($"invoke {op} {from} {to} {amount}");

        GlobalTransaction? tx = null;
        try
        {
            tx = coordinator.Begin(TimeSpan.FromSeconds(settings.TimeoutSeconds));
            // The two legs in database order, so two transfers never wait for each other across databases in opposite orders.
            var legs = new[] { (Account: from, Delta: -amount), (Account: to, Delta: amount) }
                .OrderBy(l => Bank.DatabaseOf(l.Account, databases)).ToArray();
            foreach (var (account, delta) in legs)
            {
                var branch = await banks[Bank.DatabaseOf(account, databases)].EnlistAsync(tx);
                await branch.Connection.ExecuteAsync(
                    $"UPDATE {Bank.Schema}.accounts SET balance = balance + @delta WHERE id = @account; " +
                    $"INSERT INTO {Bank.Schema}.transfers (id, from_account, to_account, amount) VALUES (@op, @from, @to, @amount)",
                    new { delta, account, op, from, to, amount }, branch.Transaction);
            }

            events.Enlist(tx).Publish(new OutgoingMessage(Bank.Exchange, Bank.RoutingKey, Encoding.UTF8.GetBytes(op), ContentType: "text/plain"));
        }
        catch (Exception ex) when (tx is not null)
        {
            // The work failed before commit (a database restarting, a lock wait past the deadline): roll back; the outcome is definite.
            await FinishAsync(op, tx, commit: false, ex.GetType().Name);
            return false;
        }
        catch (Exception ex)
        {
            Report($"unknown {op} begin failed: {OneLine(ex.Message)}");
            return false;
        }

        var outcome = await FinishAsync(op, tx, commit: true, reason: null);
        return outcome == OutcomeKind.Committed || amount == Bank.ImpossibleAmount;
    }

    private async Task<OutcomeKind?> FinishAsync(string op, GlobalTransaction tx, bool commit, string? reason)
    {
        try
        {
            var outcome = commit ? await tx.CommitAsync() : await tx.RollbackAsync();
            Report($"ok {op} {outcome.Kind} {tx.Id}{(reason is null ? string.Empty : " " + reason)}");
            return outcome.Kind;
        }
        catch (Exception ex)
        {
            Report($"unknown {op} {tx.Id} {OneLine(ex.Message)}");
            return null;
        }
        finally
        {
            await tx.DisposeAsync();
        }
    }

    private async Task<int> FinishRecoveryAsync(TransactionCoordinator coordinator, LastResourceCounters lastResource, CancellationToken cancellationToken)
    {
        // Recovery runs at start and then every second: wait until no decision is left to drive and no branch is prepared.
        var prepared = new List<string>();
        while (!cancellationToken.IsCancellationRequested)
        {
            await coordinator.RecoverAsync(cancellationToken);
            prepared.Clear();
            foreach (var database in settings.Databases)
            {
                prepared.AddRange(await Bank.PreparedAsync(database, cancellationToken));
            }

            if (coordinator.RecoveringTransactions == 0 && coordinator.InDoubtBranches == 0 && prepared.Count == 0)
            {
                break;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(500), cancellationToken);
        }

        var heuristics = coordinator.GetHeuristics();
        lastResource.ReportNow();
        Report($"recovered {SinceStart.ElapsedMilliseconds} heuristics {heuristics.Count} in-doubt {coordinator.InDoubtBranches} prepared {prepared.Count}");
        foreach (var heuristic in heuristics)
        {
            Report($"heuristic {heuristic.TransactionId} {heuristic.Kind} {OneLine(heuristic.Reason)}");
        }

        return 0;
    }

    private void Report(string line)
    {
        lock (_output)
        {
            Console.Out.WriteLine(line);
        }
    }

    private static string OneLine(string text) => text.ReplaceLineEndings(" ");
}

/// <summary>What a worker process is told on its command line.</summary>
internal sealed record WorkerSettings(
    IReadOnlyList<string> Databases, Uri Amqp, string LogDirectory, int Seed, int Incarnation, int Concurrency, int Accounts, int TimeoutSeconds, bool RecoverOnly,
    bool? LastResourceCommit);
