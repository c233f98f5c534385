using TwoPC.Protocol;
using TwoPC.Testing;
using TwoPC.TestServers;
using TwoPC.Transactions;
using Xunit.Abstractions;

namespace TwoPC.Participants.PostgreSql.Tests.LastResource;

/// <summary>
/// The last-resource commit's crash matrix with PostgreSQL itself crashing (issue 13, item 1): as in
/// <see cref="LastResourceCrashTests"/>, a coordinator process is SIGKILLed at a named step, but the databases live on a
/// private server of this class that is then crashed and restarted with <c>pg_ctl stop -m immediate</c> (no shutdown
/// checkpoint: a power cut for the server) before recovery runs — and again between a killed recovery and the next. The
/// server's crash recovery must keep exactly what was committed (the <c>'C'</c> marker with A's writes, or nothing) and
/// every prepared branch; every outcome must be atomic: the same value in every database, nothing left prepared, no
/// committed marker left behind. Two tests keep the coordinator alive while the server crashes under it.
/// </summary>
public sealed class LastResourceServerCrashTests(LastResourceServerCrashTests.PrivateServer fixture, ITestOutputHelper output)
    : IClassFixture<LastResourceServerCrashTests.PrivateServer>
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    private static readonly string[][] Points =
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

    private PostgresServer Server => fixture.Server;

    [Fact]
    public async Task Killed_before_the_marker_commit_then_a_server_crash_recovery_fences_and_rolls_back()
    {
        await using var run = await LastResourceCrashRun.PrepareAsync(Server, databases: 2);
        await run.RunAndKillAsync("--crash-step", "BeforeMarkerCommit");
        await RestartAsync(run, "after the coordinator was killed");

        // The crash kept B's prepared branch; A's open transaction (no marker) died with the server.
        Assert.Equal(new[] { 0, 0 }, await run.ValuesAsync());
        Assert.Equal(new[] { 0L, 1L }, await run.PreparedAsync());

        await run.RecoverAsync();

        await run.AssertAtomicAsync(expected: 0);
        Assert.Equal("A", await run.MarkerAsync());
    }

    [Fact]
    public async Task Killed_between_the_marker_insert_and_its_commit_then_a_server_crash_recovery_fences_and_rolls_back()
    {
        await using var run = await LastResourceCrashRun.PrepareAsync(Server, databases: 2);
        await run.RunAndKillAsync("--crash-between-insert-and-commit");
        await RestartAsync(run, "after the coordinator was killed");

        // The inserted, uncommitted 'C' row is gone with A's transaction; B is still prepared.
        Assert.Null(await run.MarkerAsync());
        Assert.Equal(new[] { 0L, 1L }, await run.PreparedAsync());

        await run.RecoverAsync();

        await run.AssertAtomicAsync(expected: 0);
        Assert.Equal("A", await run.MarkerAsync());
    }

    [Fact]
    public async Task Killed_after_the_marker_commit_then_a_server_crash_recovery_commits_from_the_marker()
    {
        await using var run = await LastResourceCrashRun.PrepareAsync(Server, databases: 2);
        await run.RunAndKillAsync("--crash-step", "AfterMarkerCommit");
        await RestartAsync(run, "after the coordinator was killed");

        // The committed decision survived the crash: A's write with its 'C' row, B prepared.
        Assert.Equal(new[] { 1, 0 }, await run.ValuesAsync());
        Assert.Equal("C", await run.MarkerAsync());
        Assert.Equal(new[] { 0L, 1L }, await run.PreparedAsync());

        await run.RecoverAsync();

        await run.AssertAtomicAsync(expected: 1);
    }

    [Fact]
    public async Task Killed_between_phase_two_commits_then_a_server_crash_recovery_commits_the_rest()
    {
        await using var run = await LastResourceCrashRun.PrepareAsync(Server, databases: 3);
        await run.RunAndKillAsync("--crash-step", "AfterBranchCommitted", "--crash-k", "1");
        await RestartAsync(run, "after the coordinator was killed");

        var values = await run.ValuesAsync();
        Assert.True(values[0] == 1 && values[1] + values[2] >= 1, string.Join(",", values));
        Assert.Equal("C", await run.MarkerAsync());

        await run.RecoverAsync();

        await run.AssertAtomicAsync(expected: 1);
    }

    [Fact]
    public async Task Recovery_killed_after_its_fence_and_the_server_crashed_again_a_second_recovery_still_rolls_back()
    {
        await using var run = await LastResourceCrashRun.PrepareAsync(Server, databases: 2);
        await run.RunAndKillAsync("--crash-step", "BeforeMarkerCommit");
        await RestartAsync(run, "after the coordinator was killed");

        // The first recovery fences ('A' committed) and is killed before it rolls the orphan back; then the server crashes.
        await run.RecoverAndKillAsync("--crash-step", "AfterFence");
        await RestartAsync(run, "after the first recovery was killed");
        Assert.Equal("A", await run.MarkerAsync());
        Assert.Equal(new[] { 0L, 1L }, await run.PreparedAsync());

        await run.RecoverAsync();

        await run.AssertAtomicAsync(expected: 0);
    }

    /// <summary>
    /// Seeds pick the crash point, whether the server crashes under the frozen coordinator (before the kill) and/or after
    /// the kill, whether the first recovery is killed at its fence, and whether the server crashes again before the next
    /// recovery; at least one server crash in every run.
    /// </summary>
    [Theory]
    [InlineData(14)] // AfterPrepare k=1; crashes while frozen, after the kill and between recoveries
    [InlineData(1)] // AfterPrepare k=2; crash between recoveries only
    [InlineData(28)] // BeforeMarkerCommit; crash between recoveries only
    [InlineData(3)] // BeforeMarkerCommit; crashes while frozen and after the kill
    [InlineData(30)] // between the marker insert and its commit; all three crashes
    [InlineData(15)] // AfterMarkerCommit; crash between recoveries only
    [InlineData(13)] // AfterMarkerCommit; crashes while frozen and after the kill
    [InlineData(19)] // AfterBranchCommitted k=1; crash between recoveries only
    [InlineData(6)] // AfterBranchCommitted k=2; all three crashes
    [InlineData(10)] // AfterEnd; all three crashes
    public async Task Randomized_crash_points_and_server_crashes_every_outcome_is_atomic(int seed)
    {
        var random = new Random(seed);
        var point = Points[random.Next(Points.Length)];
        var restartWhileFrozen = random.Next(2) == 1;
        var restartAfterKill = random.Next(2) == 1;
        var killRecoveryAtFence = random.Next(2) == 1;
        var restartBetweenRecoveries = killRecoveryAtFence && random.Next(2) == 1;
        if (!restartWhileFrozen && !restartAfterKill && !restartBetweenRecoveries)
        {
            restartAfterKill = true;
        }

        var plan = $"seed {seed}: point {string.Join(' ', point)}; server crash while frozen {restartWhileFrozen}, after the kill {restartAfterKill}; " +
            $"recovery killed at fence {killRecoveryAtFence}, server crash between recoveries {restartBetweenRecoveries}";
        output.WriteLine(plan);
        await using var run = await LastResourceCrashRun.PrepareAsync(Server, databases: 3);
        run.Note(plan);

        await run.RunAndKillAsync(restartWhileFrozen ? () => RestartAsync(run, "under the frozen coordinator") : null, point);
        if (restartAfterKill)
        {
            await RestartAsync(run, "after the coordinator was killed");
        }

        if (killRecoveryAtFence)
        {
            // Only an orphan before the decision is fenced; otherwise this recovery finishes without reaching the step.
            await run.RecoverAndKillAsync(allowFinished: true, "--crash-step", "AfterFence");
            if (restartBetweenRecoveries)
            {
                await RestartAsync(run, "after the first recovery was killed");
            }
        }

        await run.RecoverAsync();

        var values = await run.ValuesAsync();
        Assert.True(values.All(v => v == values[0]), $"{plan}: values {string.Join(",", values)}\n{run.Transcript}");
        await run.AssertAtomicAsync(values[0]);
    }

    [Fact]
    public async Task Coordinator_alive_the_server_crashes_after_the_marker_commit_and_phase_two_finishes_once_it_is_back()
    {
        await using var dbs = await LastResourceDatabases.CreateAsync(Server);
        var crashed = false;
        var coordinator = await dbs.StartCoordinatorAsync(o => o.StepHook = async (step, _, _) =>
        {
            if (step == ProtocolStep.AfterMarkerCommit && !crashed)
            {
                // The decision is committed, B is prepared and not told yet: the server crashes and comes back.
                crashed = true;
                await Server.RestartImmediateAsync();
            }
        });
        var (tx, _, _) = await dbs.BeginIncrementAsync(coordinator);

        var outcome = await tx.CommitAsync().WaitAsync(Wait);
        ForgetBrokenConnections(dbs);

        Assert.True(crashed);
        Assert.Equal(OutcomeKind.Committed, outcome.Kind);
        Assert.Equal((1, 1), await dbs.ValuesAsync());
        Assert.Equal((0L, 0L), (await dbs.A.PreparedAsync(), await dbs.B.PreparedAsync()));
        Assert.Empty(coordinator.GetHeuristics());
        await Eventually.TrueAsync(async () => await dbs.A.MarkerAsync(tx.Id) is null, Wait);
    }

    [Fact]
    public async Task Coordinator_alive_the_server_crashes_between_the_marker_insert_and_its_commit_and_the_fence_rolls_back()
    {
        await using var dbs = await LastResourceDatabases.CreateAsync(Server);
        var coordinator = await dbs.StartCoordinatorAsync();
        var crashed = false;
        dbs.A.Rm.BetweenMarkerInsertAndCommit = async _ =>
        {
            // The 'C' row is inserted and not committed: the crash takes it with A's transaction, and the COMMIT's answer
            // is lost. The coordinator's own fence (R3), retried until the server is back, must read "aborted".
            crashed = true;
            await Server.RestartImmediateAsync();
        };
        var (tx, _, _) = await dbs.BeginIncrementAsync(coordinator);

        var outcome = await tx.CommitAsync().WaitAsync(Wait);
        ForgetBrokenConnections(dbs);

        Assert.True(crashed);
        Assert.Equal(OutcomeKind.RolledBack, outcome.Kind);
        Assert.Equal((0, 0), await dbs.ValuesAsync());
        Assert.Equal((0L, 0L), (await dbs.A.PreparedAsync(), await dbs.B.PreparedAsync()));
        Assert.Equal("A", await dbs.A.MarkerAsync(tx.Id));
    }

    /// <summary>The data sources' pools still hold connections the crash broke (ClearAllPools does not reach data sources); the test's reads must not get them.</summary>
    private static void ForgetBrokenConnections(LastResourceDatabases dbs)
    {
        dbs.A.DataSource.Clear();
        dbs.B.DataSource.Clear();
    }

    private async Task RestartAsync(LastResourceCrashRun run, string when)
    {
        await Server.RestartImmediateAsync();
        run.Note($"server crashed (-m immediate) and restarted {when}");
    }

    /// <summary>This class's own server: the tests crash it, so it is not the "postgres" collection's shared one.</summary>
    public sealed class PrivateServer : IAsyncLifetime
    {
        private PostgresServer? _server;

        public PostgresServer Server => _server ?? throw new InvalidOperationException("The private PostgreSQL server has not started.");

        // fsync stays on (the default): the crash is a power cut for the server, and what it kept must be on disk.
        public async Task InitializeAsync() => _server = await PostgresServer.StartAsync(new PostgresServerOptions { MaxPreparedTransactions = 16 });

        public async Task DisposeAsync()
        {
            if (_server is not null)
            {
                await _server.DisposeAsync();
            }
        }
    }
}
