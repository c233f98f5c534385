using Dapper;
using Npgsql;
using TwoPC.Participants.PostgreSql.Tests.Infrastructure;
using TwoPC.Testing;

namespace TwoPC.Participants.PostgreSql.Tests.LastResource;

/// <summary>
/// The last-resource commit's crash matrix with real processes (issue 13, item 1): a coordinator process
/// (Tests/TwoPC.CrashHost <c>pg-run --lrc</c>) SIGKILLed at a named step of one transaction over two or three
/// databases (A, enlisted first, is the last resource), then a new process on the same log (<c>pg-recover --lrc</c>),
/// itself killed during its fence in some cases. Every outcome must be atomic: the same value in every database,
/// nothing left prepared, no committed marker left behind.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class LastResourceCrashTests(PostgresFixture fixture)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Killed_before_the_marker_commit_recovery_fences_and_rolls_back()
    {
        await using var run = await CrashRunAsync.PrepareAsync(fixture, databases: 2);
        await run.RunAndKillAsync("--crash-step", "BeforeMarkerCommit");
        Assert.Equal(new[] { 0, 0 }, await run.ValuesAsync());
        Assert.Equal(new[] { 0L, 1L }, await run.PreparedAsync());

        await run.RecoverAsync();

        await run.AssertAtomicAsync(expected: 0);
        Assert.Equal("A", await run.MarkerAsync());
    }

    [Fact]
    public async Task Killed_after_the_marker_commit_recovery_commits_from_the_marker()
    {
        await using var run = await CrashRunAsync.PrepareAsync(fixture, databases: 2);
        await run.RunAndKillAsync("--crash-step", "AfterMarkerCommit");
        Assert.Equal(new[] { 1, 0 }, await run.ValuesAsync());
        Assert.Equal("C", await run.MarkerAsync());

        await run.RecoverAsync();

        await run.AssertAtomicAsync(expected: 1);
    }

    [Fact]
    public async Task Killed_between_the_marker_insert_and_its_commit_recovery_fences_and_rolls_back()
    {
        await using var run = await CrashRunAsync.PrepareAsync(fixture, databases: 2);
        await run.RunAndKillAsync("--crash-between-insert-and-commit");
        Assert.Equal(new[] { 0L, 1L }, await run.PreparedAsync());

        await run.RecoverAsync();

        await run.AssertAtomicAsync(expected: 0);
        Assert.Equal("A", await run.MarkerAsync());
    }

    [Fact]
    public async Task Killed_between_phase_two_commits_recovery_commits_the_rest()
    {
        await using var run = await CrashRunAsync.PrepareAsync(fixture, databases: 3);
        await run.RunAndKillAsync("--crash-step", "AfterBranchCommitted", "--crash-k", "1");
        // Killed in phase 2 once the first prepared branch acknowledged (the second commit runs in parallel and may have
        // landed too), before END and before the marker was deleted: recovery re-drives from the marker.
        var values = await run.ValuesAsync();
        Assert.True(values[0] == 1 && values[1] + values[2] >= 1, string.Join(",", values));
        Assert.Equal("C", await run.MarkerAsync());

        await run.RecoverAsync();

        await run.AssertAtomicAsync(expected: 1);
    }

    [Fact]
    public async Task Recovery_killed_after_its_fence_a_second_recovery_still_rolls_back()
    {
        await using var run = await CrashRunAsync.PrepareAsync(fixture, databases: 2);
        await run.RunAndKillAsync("--crash-step", "BeforeMarkerCommit");

        // The first recovery fences ('A' committed) and is killed before it rolls the orphan back.
        await run.RecoverAndKillAsync("--crash-step", "AfterFence");
        Assert.Equal("A", await run.MarkerAsync());
        Assert.Equal(new[] { 0L, 1L }, await run.PreparedAsync());

        await run.RecoverAsync();

        await run.AssertAtomicAsync(expected: 0);
    }

    /// <summary>Seeds pick the step, the occurrence and whether recovery is itself killed at its fence first.</summary>
    [Theory]
    [InlineData(101)]
    [InlineData(202)]
    [InlineData(303)]
    [InlineData(404)]
    [InlineData(505)]
    [InlineData(606)]
    public async Task Randomized_crash_points_every_outcome_is_atomic(int seed)
    {
        var random = new Random(seed);
        string[][] points =
        [
            ["--crash-step", "AfterPrepare", "--crash-k", "1"],
            ["--crash-step", "AfterPrepare", "--crash-k", "2"],
            ["--crash-step", "BeforeMarkerCommit"],
            ["--crash-between-insert-and-commit"],
            ["--crash-step", "AfterMarkerCommit"],
            ["--crash-step", "AfterBranchCommitted", "--crash-k", "1"],
            ["--crash-step", "AfterBranchCommitted", "--crash-k", "2"],
            ["--crash-step", "AfterEnd"],
        ];
        var point = points[random.Next(points.Length)];
        var killRecoveryAtFence = random.Next(2) == 1;
        await using var run = await CrashRunAsync.PrepareAsync(fixture, databases: 3);
        await run.RunAndKillAsync(point);
        if (killRecoveryAtFence)
        {
            // Only an orphan before the decision is fenced; otherwise this recovery finishes without reaching the step.
            await run.RecoverAndKillAsync(allowFinished: true, "--crash-step", "AfterFence");
        }

        await run.RecoverAsync();

        var values = await run.ValuesAsync();
        Assert.True(values.All(v => v == values[0]), $"seed {seed}, point {string.Join(' ', point)}, recovery killed at fence {killRecoveryAtFence}: values {string.Join(",", values)}\n{run.Transcript}");
        await run.AssertAtomicAsync(values[0]);
    }

    private sealed class CrashRunAsync : IAsyncDisposable
    {
        private readonly string[] _databases;
        private readonly string _log = Directory.CreateTempSubdirectory("twopc-lrc-crash-").FullName;
        private readonly List<string> _transcript = [];

        // Prepared gids are unique per server: a node id of its own keeps one failed run from breaking the next.
        private readonly string _node = "lrc-" + Guid.NewGuid().ToString("N")[..8];
        private string? _gtrid;

        private CrashRunAsync(string[] databases) => _databases = databases;

        public string Transcript => string.Join("\n", _transcript);

        public static async Task<CrashRunAsync> PrepareAsync(PostgresFixture fixture, int databases)
        {
            var connectionStrings = new string[databases];
            for (var i = 0; i < databases; i++)
            {
                connectionStrings[i] = await fixture.Server.CreateDatabaseAsync();
                await using var c = new NpgsqlConnection(connectionStrings[i]);
                await c.ExecuteAsync("CREATE TABLE items (id int PRIMARY KEY, value int NOT NULL); INSERT INTO items VALUES (1, 0)");
            }

            return new CrashRunAsync(connectionStrings);
        }

        public async Task RunAndKillAsync(params string[] crash)
        {
            using var host = CrashHostProcess.Start(["pg-run", "--lrc", .. Connections(), .. crash]);
            var line = await host.WaitForLineAsync(Wait, "CRASHPOINT", "DONE");
            _transcript.Add(host.Describe());
            Assert.True(line?.StartsWith("CRASHPOINT", StringComparison.Ordinal) == true, host.Describe());
            _gtrid = host.StdoutLines.First(l => l.StartsWith("BEGUN ", StringComparison.Ordinal))["BEGUN ".Length..];
            host.Kill();
            await host.WaitForExitAsync(Wait);
        }

        public Task RecoverAndKillAsync(params string[] crash) => RecoverAndKillAsync(false, crash);

        public async Task RecoverAndKillAsync(bool allowFinished, params string[] crash)
        {
            using var host = CrashHostProcess.Start(["pg-recover", "--lrc", .. Connections(), .. crash]);
            var line = await host.WaitForLineAsync(Wait, "CRASHPOINT", "RECOVERED");
            _transcript.Add(host.Describe());
            Assert.True(line?.StartsWith("CRASHPOINT", StringComparison.Ordinal) == true || (allowFinished && line == "RECOVERED"), host.Describe());
            host.Kill();
            await host.WaitForExitAsync(Wait);
        }

        public async Task RecoverAsync()
        {
            using var host = CrashHostProcess.Start(["pg-recover", "--lrc", .. Connections()]);
            var exit = await host.WaitForExitAsync(Wait);
            _transcript.Add(host.Describe());
            Assert.True(exit == 0 && host.StdoutLines.Contains("RECOVERED"), host.Describe());
            Assert.DoesNotContain(host.StdoutLines, l => l.StartsWith("HEURISTIC", StringComparison.Ordinal));
        }

        public async Task<int[]> ValuesAsync()
        {
            var values = new int[_databases.Length];
            for (var i = 0; i < values.Length; i++)
            {
                await using var c = new NpgsqlConnection(_databases[i]);
                values[i] = await c.ExecuteScalarAsync<int>("SELECT value FROM items WHERE id = 1");
            }

            return values;
        }

        public async Task<long[]> PreparedAsync()
        {
            var prepared = new long[_databases.Length];
            for (var i = 0; i < prepared.Length; i++)
            {
                await using var c = new NpgsqlConnection(_databases[i]);
                prepared[i] = await c.ExecuteScalarAsync<long>("SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database()");
            }

            return prepared;
        }

        /// <summary>The marker of the transaction in A ('C', 'A' or null).</summary>
        public async Task<string?> MarkerAsync()
        {
            await using var c = new NpgsqlConnection(_databases[0]);
            return await c.ExecuteScalarAsync<bool>("SELECT to_regclass('twopc.commit_markers') IS NOT NULL")
                ? await c.ExecuteScalarAsync<string?>("SELECT state FROM twopc.commit_markers WHERE gtrid = @gtrid", new { gtrid = _gtrid })
                : null;
        }

        public async Task AssertAtomicAsync(int expected)
        {
            Assert.True(Enumerable.Repeat(expected, _databases.Length).SequenceEqual(await ValuesAsync()), $"values {string.Join(",", await ValuesAsync())}, expected all {expected}\n{Transcript}");
            Assert.True((await PreparedAsync()).All(p => p == 0), Transcript);
            Assert.True(await MarkerAsync() is null or "A", $"a committed marker was left behind\n{Transcript}");
        }

        public ValueTask DisposeAsync()
        {
            Directory.Delete(_log, recursive: true);
            return ValueTask.CompletedTask;
        }

        private string[] Connections()
        {
            string[] args = ["--node", _node, "--log", _log, "--db-a", _databases[0], "--db-b", _databases[1]];
            return _databases.Length > 2 ? [.. args, "--db-c", _databases[2]] : args;
        }
    }
}
