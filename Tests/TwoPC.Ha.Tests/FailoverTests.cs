using System.Diagnostics;
using TwoPC.Testing;
using Xunit.Abstractions;

namespace TwoPC.Ha.Tests;

/// <summary>
/// Coordinator nodes as real processes on one shared PostgreSQL log: one is SIGKILLed (or SIGSTOPped past its lease) at
/// a named protocol step while two databases hold its branches prepared, and another node finishes its transaction.
/// </summary>
[Collection(HaCollection.Name)]
public sealed class FailoverTests(HaFixture fixture, ITestOutputHelper output)
{
    [Fact]
    public async Task A_node_killed_after_logging_its_decision_has_it_committed_by_another_node()
    {
        await using var cluster = await HaCluster.CreateAsync(fixture.Server);
        await cluster.StartNodeAsync("ha-b");
        var a = await cluster.StartNodeAsync("ha-a", "--transactions", "1", "--crash-step", "DecisionLogged");
        var crash = await a.WaitForLineAsync(HaCluster.Wait, "CRASHPOINT");
        Assert.NotNull(crash);
        var gtrid = crash!.Split(' ')[2];
        a.Kill();

        // Killed with the decision logged and both branches prepared, nothing committed yet.
        Assert.Equal(2, await cluster.PreparedAsync());
        Assert.Equal((0L, 0L), await cluster.SumsAsync());
        Assert.Equal(1, await cluster.DecisionsAsync(gtrid));
        var lease = await cluster.LeaseAsync("ha-a");

        var resolvedAfter = await ResolvedAsync(cluster, lease.ExpiresAt, expected: (1, 1));
        output.WriteLine($"ha-a's transaction committed by ha-b {resolvedAfter.TotalSeconds:0.00} s after ha-a's lease expired (lease 2 s, takeover checked every 0.25 s)");
        await Eventually.TrueAsync(async () => await cluster.DecisionsAsync(gtrid) == 0, HaCluster.Wait, cluster.Describe);
    }

    [Fact]
    public async Task A_node_killed_between_prepare_and_decision_has_its_branches_rolled_back_by_another_node()
    {
        await using var cluster = await HaCluster.CreateAsync(fixture.Server);
        await cluster.StartNodeAsync("ha-b");
        var a = await cluster.StartNodeAsync("ha-a", "--transactions", "1", "--crash-step", "AfterPrepare", "--crash-k", "2");
        var crash = await a.WaitForLineAsync(HaCluster.Wait, "CRASHPOINT");
        Assert.NotNull(crash);
        a.Kill();

        Assert.Equal(2, await cluster.PreparedAsync());
        Assert.Equal(0, await cluster.DecisionsAsync(crash!.Split(' ')[2]));
        var lease = await cluster.LeaseAsync("ha-a");

        var resolvedAfter = await ResolvedAsync(cluster, lease.ExpiresAt, expected: (0, 0));
        output.WriteLine($"ha-a's prepared branches rolled back by ha-b {resolvedAfter.TotalSeconds:0.00} s after ha-a's lease expired");
    }

    [Fact]
    public async Task A_node_paused_past_its_lease_is_fenced_and_its_late_decision_changes_nothing()
    {
        await using var cluster = await HaCluster.CreateAsync(fixture.Server);
        var resume = Path.Combine(Path.GetTempPath(), $"twopc-ha-resume-{Guid.NewGuid():N}");
        var b = await cluster.StartNodeAsync("ha-b");
        var a = await cluster.StartNodeAsync("ha-a", "--transactions", "1", "--crash-step", "AfterPrepare", "--crash-k", "2", "--resume-file", resume);
        var pause = await a.WaitForLineAsync(HaCluster.Wait, "PAUSEPOINT");
        Assert.NotNull(pause);
        var gtrid = pause!.Split(' ')[2];

        // A GC pause, a partition: the whole process stops, lease renewals included.
        HaCluster.Stop(a);
        try
        {
            Assert.NotNull(await b.WaitForLineAsync(HaCluster.Wait, "TAKEOVER ha-a"));
            await Eventually.TrueAsync(async () => await cluster.PreparedAsync() == 0, HaCluster.Wait, cluster.Describe);
            Assert.Equal((0L, 0L), await cluster.SumsAsync());
        }
        finally
        {
            HaCluster.Continue(a);
        }

        // It wakes up and carries on with its commit: the decision write is refused, it rolls back and stops deciding.
        await File.WriteAllTextAsync(resume, "go");
        try
        {
            var outcome = await a.WaitForLineAsync(HaCluster.Wait, "OUTCOME", "ERROR");
            Assert.Equal($"OUTCOME {gtrid} RolledBack", outcome);
            Assert.NotNull(await a.WaitForLineAsync(HaCluster.Wait, "FENCED"));
            Assert.Equal(0, await cluster.DecisionsAsync(gtrid));
            Assert.Equal((0L, 0L), await cluster.SumsAsync());
            Assert.Equal(0, await cluster.PreparedAsync());
        }
        finally
        {
            File.Delete(resume);
        }
    }

    /// <summary>Waits until nothing is prepared and both sums are <paramref name="expected"/>; returns how long after the lease expiry that was.</summary>
    private static async Task<TimeSpan> ResolvedAsync(HaCluster cluster, DateTime leaseExpiredAt, (long, long) expected)
    {
        await Eventually.TrueAsync(async () => await cluster.PreparedAsync() == 0, HaCluster.Wait, cluster.Describe);
        var resolvedAt = await cluster.DatabaseNowAsync();
        Assert.Equal(expected, await cluster.SumsAsync());
        return resolvedAt - leaseExpiredAt;
    }
}
