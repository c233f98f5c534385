using Dapper;
using Npgsql;
using TwoPC.TestServers;

namespace TwoPC.Verify.Tests;

/// <summary>
/// The checker's checks find each violation they exist for: a bank is set up on two real databases, then the state a
/// broken transaction manager would leave is written by hand, and the one check that must catch it fails (and a clean
/// state passes every check, so the checks are not simply always failing).
/// </summary>
public sealed class ChecksTests : IAsyncLifetime
{
    private PostgresServer _server = null!;
    private string[] _databases = [];

    public async Task InitializeAsync()
    {
        _server = await PostgresServer.StartAsync(new PostgresServerOptions { Fsync = false });
        _databases = [await _server.CreateDatabaseAsync(), await _server.CreateDatabaseAsync()];
        for (var i = 0; i < _databases.Length; i++)
        {
            await Bank.CreateAsync(_databases[i], i, _databases.Length, accounts: 4, initialBalance: 100, CancellationToken.None);
        }
    }

    public async Task DisposeAsync() => await _server.DisposeAsync();

    [Fact]
    public async Task A_clean_run_passes_every_check()
    {
        using var history = new History(null);
        await TransferAsync(history, "1.1", from: 0, to: 1, amount: 10, "Committed", consumed: 1);
        Invoke(history, "1.2", 1, 2, 5, "RolledBack");
        Invoke(history, "1.3", 2, 3, Bank.ImpossibleAmount, "RolledBack");
        Invoke(history, "1.4", 3, 0, 7, outcome: null); // unknown, and absent: allowed

        var checks = await RunAsync(history);

        Assert.All(checks, c => Assert.True(c.Holds, $"{c.Name}: {c.Detail}"));
    }

    [Fact]
    public async Task A_transfer_in_one_database_only_breaks_all_or_nothing_and_money()
    {
        using var history = new History(null);
        Invoke(history, "1.1", 0, 1, 10, outcome: null);
        await ExecuteAsync(_databases[0], "UPDATE twopc_verify.accounts SET balance = balance - 10 WHERE id = 0; INSERT INTO twopc_verify.transfers VALUES ('1.1', 0, 1, 10)");

        var checks = await RunAsync(history);

        Assert.Equal(["money conserved", "all-or-nothing: every transfer in all its databases or in none"], Failed(checks));
    }

    [Fact]
    public async Task A_lost_commit_a_committed_rollback_and_a_committed_No_are_each_caught()
    {
        using var history = new History(null);
        Invoke(history, "1.1", 0, 1, 10, "Committed");                              // acknowledged, but nothing written
        await TransferAsync(history, "1.2", from: 1, to: 2, amount: 5, "RolledBack", consumed: 1);
        await TransferAsync(history, "1.3", from: 2, to: 3, amount: 20, outcome: null, consumed: 1, designedNo: true);

        var checks = await RunAsync(history);

        Assert.Equal([
            "durability: every transfer the client saw Committed is present",
            "no transfer the client saw RolledBack is present",
            "every transfer designed to vote No is absent",
        ], Failed(checks));
    }

    [Fact]
    public async Task A_message_consumed_twice_or_for_an_absent_transfer_or_never_breaks_exactly_once()
    {
        foreach (var (consumed, orphan) in new[] { (2, false), (0, false), (1, true) })
        {
            await InitializeAsync();
            using var history = new History(null);
            await TransferAsync(history, "1.1", from: 0, to: 1, amount: 10, "Committed", consumed);
            if (orphan)
            {
                await ExecuteAsync(_databases[0], "INSERT INTO twopc_verify.consumed (transfer_id) VALUES ('1.9')");
            }

            var checks = await RunAsync(history);

            Assert.Equal(["exactly once: one consumed message per committed transfer, none for others"], Failed(checks));
            await DisposeAsync();
        }

        await InitializeAsync();
    }

    [Fact]
    public async Task A_prepared_transaction_left_behind_and_a_heuristic_are_caught()
    {
        using var history = new History(null);
        await ExecuteAsync(_databases[1], "BEGIN; INSERT INTO twopc_verify.consumed (transfer_id) SELECT 'x' WHERE false; PREPARE TRANSACTION 'left-behind'");

        var checks = await RunAsync(history, new FinalState(true, 1, Heuristics: 1, DeadLettered: 0, Parked: 2));

        Assert.Equal(["no prepared transaction left", "nothing dead-lettered or parked", "no heuristic outcome"], Failed(checks));
        await ExecuteAsync(_databases[1], "ROLLBACK PREPARED 'left-behind'");
    }

    [Theory]
    [InlineData(true, "metrics committed 3 log-decisions 1 marker-commits 2 fences 0 markers-redriven 0")] // one decision forced to the log
    [InlineData(true, "metrics committed 3 log-decisions 0 marker-commits 0 fences 0 markers-redriven 0")] // no marker commit at all
    [InlineData(false, "metrics committed 3 log-decisions 2 marker-commits 1 fences 0 markers-redriven 0")] // off, yet a marker commit
    public async Task A_run_whose_coordinators_did_not_take_the_configured_commit_path_fails_the_commit_path_check(bool lastResourceCommit, string metrics)
    {
        using var history = new History(null);
        history.OnWorkerLine(2, metrics);

        var checks = await Checks.RunAsync(Settings with { LastResourceCommit = lastResourceCommit }, history, new FinalState(true, 1, 0, 0, 0), CancellationToken.None);

        Assert.Equal([$"commit path: last-resource commit {(lastResourceCommit ? "on" : "off")}"], Failed(checks));
    }

    [Fact]
    public void The_commit_paths_are_each_workers_last_metrics_line_summed()
    {
        using var history = new History(null);
        history.OnWorkerLine(1, "metrics committed 1 log-decisions 0 marker-commits 1 fences 0 markers-redriven 0");
        history.OnWorkerLine(1, "metrics committed 5 log-decisions 0 marker-commits 5 fences 1 markers-redriven 0");
        history.OnWorkerLine(2, "metrics committed 2 log-decisions 1 marker-commits 1 fences 0 markers-redriven 3");
        history.OnWorkerLine(2, "metrics committed x log-decisions 1 marker-commits 1 fences 0 markers-redriven 3"); // not a metrics line: ignored

        Assert.Equal(new CommitPaths(Committed: 7, LogDecisions: 1, MarkerCommits: 6, Fences: 1, MarkersRedriven: 3), history.Paths);
    }

    private static string[] Failed(IReadOnlyList<Check> checks) => [.. checks.Where(c => !c.Holds).Select(c => c.Name)];

    private Task<IReadOnlyList<Check>> RunAsync(History history, FinalState? final = null)
    {
        // The workers' coordinators took the last-resource path, as configured (the commit path check holds).
        history.OnWorkerLine(1, "metrics committed 1 log-decisions 0 marker-commits 1 fences 0 markers-redriven 0");
        return Checks.RunAsync(Settings, history, final ?? new FinalState(true, 1, 0, 0, 0), CancellationToken.None);
    }

    private RunSettings Settings => new()
    {
        Databases = _databases,
        Amqp = new Uri("amqp://unused/"),
        WorkDirectory = Path.GetTempPath(),
        Duration = TimeSpan.Zero,
        Seed = 1,
        Accounts = 4,
        InitialBalance = 100,
        Faults = [],
        LastResourceCommit = true,
    };

    private static void Invoke(History history, string op, int from, int to, long amount, string? outcome)
    {
        history.OnWorkerLine(1, $"invoke {op} {from} {to} {amount}");
        if (outcome is not null)
        {
            history.OnWorkerLine(1, $"ok {op} {outcome} 00000001_tx_{op}");
        }
    }

    // Writes a whole transfer (both legs, both rows) and its consumed messages, as a correct run would leave it.
    private async Task TransferAsync(History history, string op, int from, int to, long amount, string? outcome, int consumed, bool designedNo = false)
    {
        Invoke(history, op, from, to, designedNo ? Bank.ImpossibleAmount : amount, outcome);
        await ExecuteAsync(_databases[from % 2], $"UPDATE twopc_verify.accounts SET balance = balance - {amount} WHERE id = {from}; INSERT INTO twopc_verify.transfers VALUES ('{op}', {from}, {to}, {amount})");
        await ExecuteAsync(_databases[to % 2], $"UPDATE twopc_verify.accounts SET balance = balance + {amount} WHERE id = {to}; INSERT INTO twopc_verify.transfers VALUES ('{op}', {from}, {to}, {amount})");
        for (var i = 0; i < consumed; i++)
        {
            await ExecuteAsync(_databases[0], $"INSERT INTO twopc_verify.consumed (transfer_id) VALUES ('{op}')");
        }
    }

    private static async Task ExecuteAsync(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.ExecuteAsync(sql);
    }
}
