using TwoPC.Testing;
using Xunit.Abstractions;

namespace TwoPC.Ha.Tests;

/// <summary>
/// The last-resource commit (the default) on a shared log: the decision is the marker row in database A, not a log
/// record, so the node that takes over a dead or paused node must find it there (R1 for a committed marker, the fence
/// for an orphan) — with real processes, SIGKILL and SIGSTOP.
/// </summary>
[Collection(HaCollection.Name)]
public sealed class LastResourceFailoverTests(HaFixture fixture, ITestOutputHelper output)
{
    [Fact]
    public async Task A_node_killed_after_its_marker_commit_has_the_transaction_committed_by_another_node()
    {
        await using var cluster = await HaCluster.CreateAsync(fixture.Server);
        await cluster.StartNodeAsync("ha-b", "--lrc");
        var a = await cluster.StartNodeAsync("ha-a", "--lrc", "--transactions", "1", "--crash-step", "AfterMarkerCommit");
        var crash = await a.WaitForLineAsync(HaCluster.Wait, "CRASHPOINT");
        Assert.NotNull(crash);
        var gtrid = crash!.Split(' ')[2];
        a.Kill();

        // A committed with its 'C' marker (the decision); B still prepared; nothing in the shared log.
        Assert.Equal((1L, 0L), await cluster.SumsAsync());
        Assert.Equal(1, await cluster.PreparedAsync());
        Assert.Equal(0, await cluster.DecisionsAsync(gtrid));
        Assert.Equal("C", await CommitMarkerTable.StateAsync(cluster.A, gtrid));

        await Eventually.TrueAsync(async () => await cluster.PreparedAsync() == 0, HaCluster.Wait, cluster.Describe);
        Assert.Equal((1L, 1L), await cluster.SumsAsync());
        output.WriteLine("ha-a's last-resource transaction committed by ha-b from its marker");
        await Eventually.TrueAsync(async () => await CommitMarkerTable.StateAsync(cluster.A, gtrid) is null, HaCluster.Wait, cluster.Describe);
    }

    [Fact]
    public async Task A_node_paused_before_its_marker_commit_is_fenced_in_the_last_resource_and_rolls_back()
    {
        await using var cluster = await HaCluster.CreateAsync(fixture.Server);
        var resume = Path.Combine(Path.GetTempPath(), $"twopc-ha-resume-{Guid.NewGuid():N}");
        var b = await cluster.StartNodeAsync("ha-b", "--lrc");
        var a = await cluster.StartNodeAsync("ha-a", "--lrc", "--transactions", "1", "--crash-step", "BeforeMarkerCommit", "--resume-file", resume);
        var pause = await a.WaitForLineAsync(HaCluster.Wait, "PAUSEPOINT");
        Assert.NotNull(pause);
        var gtrid = pause!.Split(' ')[2];

        HaCluster.Stop(a);
        try
        {
            // The taker fences the transaction in A ('A' row) and rolls B's prepared branch back.
            Assert.NotNull(await b.WaitForLineAsync(HaCluster.Wait, "TAKEOVER ha-a"));
            await Eventually.TrueAsync(async () => await cluster.PreparedAsync() == 0, HaCluster.Wait, cluster.Describe);
            Assert.Equal("A", await CommitMarkerTable.StateAsync(cluster.A, gtrid));
            Assert.Equal((0L, 0L), await cluster.SumsAsync());
        }
        finally
        {
            HaCluster.Continue(a);
        }

        // It wakes up and sends its marker COMMIT: the 'A' row refuses it, A's update rolls back with it.
        await File.WriteAllTextAsync(resume, "go");
        try
        {
            var outcome = await a.WaitForLineAsync(HaCluster.Wait, "OUTCOME", "ERROR");
            Assert.Equal($"OUTCOME {gtrid} RolledBack", outcome);
            Assert.Equal((0L, 0L), await cluster.SumsAsync());
            Assert.Equal(0, await cluster.PreparedAsync());
            Assert.Equal("A", await CommitMarkerTable.StateAsync(cluster.A, gtrid));
        }
        finally
        {
            File.Delete(resume);
        }
    }
}
