using TwoPC.Participants.PostgreSql.Tests.Infrastructure;

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
    [Fact]
    public async Task Killed_before_the_marker_commit_recovery_fences_and_rolls_back()
    {
        await using var run = await LastResourceCrashRun.PrepareAsync(fixture.Server, databases: 2);
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
        await using var run = await LastResourceCrashRun.PrepareAsync(fixture.Server, databases: 2);
        await run.RunAndKillAsync("--crash-step", "AfterMarkerCommit");
        Assert.Equal(new[] { 1, 0 }, await run.ValuesAsync());
        Assert.Equal("C", await run.MarkerAsync());

        await run.RecoverAsync();

        await run.AssertAtomicAsync(expected: 1);
    }

    [Fact]
    public async Task Killed_between_the_marker_insert_and_its_commit_recovery_fences_and_rolls_back()
    {
        await using var run = await LastResourceCrashRun.PrepareAsync(fixture.Server, databases: 2);
        await run.RunAndKillAsync("--crash-between-insert-and-commit");
        Assert.Equal(new[] { 0L, 1L }, await run.PreparedAsync());

        await run.RecoverAsync();

        await run.AssertAtomicAsync(expected: 0);
        Assert.Equal("A", await run.MarkerAsync());
    }

    [Fact]
    public async Task Killed_between_phase_two_commits_recovery_commits_the_rest()
    {
        await using var run = await LastResourceCrashRun.PrepareAsync(fixture.Server, databases: 3);
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
        await using var run = await LastResourceCrashRun.PrepareAsync(fixture.Server, databases: 2);
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
        await using var run = await LastResourceCrashRun.PrepareAsync(fixture.Server, databases: 3);
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
}
