using Dapper;
using Npgsql;
using TwoPC.Participants.PostgreSql.Tests.Infrastructure;
using TwoPC.Testing;

namespace TwoPC.Participants.PostgreSql.Tests;

/// <summary>
/// A coordinator process (Tests/TwoPC.CrashHost, <c>pg-run</c>) SIGKILLed at a protocol step while
/// two databases hold its branches prepared, then a new process on the same log (<c>pg-recover</c>).
/// </summary>
[Collection("postgres")]
public sealed class PostgresCrashTests(PostgresFixture fixture)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Killed_after_the_decision_before_commit_prepared_recovery_commits_both()
    {
        var (a, b, log) = await PrepareAsync();
        try
        {
            var run = await RunAndKillAsync(a, b, log, "--crash-step", "DecisionLogged");

            // Killed with the decision durable and both branches prepared, nothing committed yet.
            var prepared = (await PreparedAsync(a), await PreparedAsync(b));
            Assert.True((1L, 1L) == prepared, $"prepared {prepared}\n{run}");
            Assert.Equal((0, 0), (await ValueAsync(a), await ValueAsync(b)));

            await RecoverAsync(a, b, log);
            Assert.Equal((1, 1), (await ValueAsync(a), await ValueAsync(b)));
            Assert.Equal((0L, 0L), (await PreparedAsync(a), await PreparedAsync(b)));
        }
        finally
        {
            Directory.Delete(log, recursive: true);
        }
    }

    [Fact]
    public async Task Killed_after_both_prepares_before_the_decision_recovery_rolls_both_back()
    {
        var (a, b, log) = await PrepareAsync();
        try
        {
            var run = await RunAndKillAsync(a, b, log, "--crash-step", "AfterPrepare", "--crash-k", "2");
            var prepared = (await PreparedAsync(a), await PreparedAsync(b));
            Assert.True((1L, 1L) == prepared, $"prepared {prepared}\n{run}");

            // No decision in the log: presumed abort, once the orphans are older than the safety interval.
            await RecoverAsync(a, b, log);
            Assert.Equal((0, 0), (await ValueAsync(a), await ValueAsync(b)));
            Assert.Equal((0L, 0L), (await PreparedAsync(a), await PreparedAsync(b)));
        }
        finally
        {
            Directory.Delete(log, recursive: true);
        }
    }

    [Fact]
    public async Task Item07_committed_in_doubt_longer_than_marker_retention_then_killed_before_end_recovery_reports_committed()
    {
        var (a, b, log) = await PrepareAsync();
        try
        {
            // Both branches committed, the coordinator killed before END: the restart re-drives COMMIT PREPARED and
            // gets 42704 (no such prepared transaction) for both.
            var run = await RunAndKillAsync(a, b, log, "--crash-step", "AfterBranchCommitted", "--crash-k", "2");
            Assert.True((1, 1) == (await ValueAsync(a), await ValueAsync(b)), run);
            Assert.Equal((0L, 0L), (await PreparedAsync(a), await PreparedAsync(b)));

            // The transaction had been in doubt for longer than any evidence retention (a day, say), and a recovery
            // pass ran before the re-drive: whatever the resource manager keeps per branch, it must not lose what
            // this re-drive needs.
            foreach (var connectionString in new[] { a, b })
            {
                await using var c = new NpgsqlConnection(connectionString);
                await c.ExecuteAsync("DO $$ BEGIN IF to_regclass('twopc.markers') IS NOT NULL THEN UPDATE twopc.markers SET created_at = now() - interval '25 hours'; END IF; END $$");
                await using var ds = NpgsqlDataSource.Create(connectionString);
                using var rm = await PostgresResourceManager.CreateAsync("pass", ds);
                await rm.RecoverAsync(default);
            }

            var recovery = await RecoverAsync(a, b, log);
            Assert.False(recovery.StdoutLines.Any(l => l.StartsWith("HEURISTIC", StringComparison.Ordinal)), recovery.Describe);
            Assert.Equal((1, 1), (await ValueAsync(a), await ValueAsync(b)));
        }
        finally
        {
            Directory.Delete(log, recursive: true);
        }
    }

    private async Task<(string A, string B, string Log)> PrepareAsync()
    {
        var a = await fixture.Server.CreateDatabaseAsync();
        var b = await fixture.Server.CreateDatabaseAsync();
        foreach (var connectionString in new[] { a, b })
        {
            await using var c = new NpgsqlConnection(connectionString);
            await c.ExecuteAsync("CREATE TABLE items (id int PRIMARY KEY, value int NOT NULL); INSERT INTO items VALUES (1, 0)");
        }

        return (a, b, Directory.CreateTempSubdirectory("twopc-pg-crash-").FullName);
    }

    private static async Task<string> RunAndKillAsync(string a, string b, string log, params string[] crash)
    {
        using var host = CrashHostProcess.Start(["pg-run", "--log", log, "--db-a", a, "--db-b", b, .. crash]);
        var line = await host.WaitForLineAsync(Wait, "CRASHPOINT", "DONE");
        Assert.True(line?.StartsWith("CRASHPOINT", StringComparison.Ordinal) == true, host.Describe());
        host.Kill();
        await host.WaitForExitAsync(Wait);
        return host.Describe();
    }

    private static async Task<(IReadOnlyList<string> StdoutLines, string Describe)> RecoverAsync(string a, string b, string log)
    {
        using var host = CrashHostProcess.Start(["pg-recover", "--log", log, "--db-a", a, "--db-b", b]);
        var exit = await host.WaitForExitAsync(Wait);
        Assert.True(exit == 0 && host.StdoutLines.Contains("RECOVERED"), host.Describe());
        return ([.. host.StdoutLines], host.Describe());
    }

    private static async Task<long> PreparedAsync(string connectionString)
    {
        await using var c = new NpgsqlConnection(connectionString);
        return await c.ExecuteScalarAsync<long>("SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database()");
    }

    private static async Task<int> ValueAsync(string connectionString)
    {
        await using var c = new NpgsqlConnection(connectionString);
        return await c.ExecuteScalarAsync<int>("SELECT value FROM items WHERE id = 1");
    }
}
