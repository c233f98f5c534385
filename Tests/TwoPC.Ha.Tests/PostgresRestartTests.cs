using TwoPC.Testing;
using TwoPC.TestServers;
using Xunit.Abstractions;

namespace TwoPC.Ha.Tests;

/// <summary>The shared log's PostgreSQL crashes (<c>pg_ctl stop -m immediate</c>) while two nodes run transactions.</summary>
public sealed class PostgresRestartTests(ITestOutputHelper output)
{
    [Fact]
    public async Task PostgreSQL_restarted_immediate_under_load_loses_no_decision_and_the_nodes_carry_on()
    {
        // Its own server: the restart must not disturb the other HA tests.
        await using var cluster = await HaCluster.CreateAsync(await PostgresServer.StartAsync(HaFixture.Options), ownsServer: true);

        // A lease longer than the restart, so neither node is taken over while the server is down.
        string[] lease = ["--lease-ms", "15000", "--renew-ms", "1000"];
        await cluster.StartNodeAsync("ha-b", lease);
        var a = await cluster.StartNodeAsync("ha-a", ["--transactions", "400", "--concurrency", "4", .. lease]);
        await Eventually.TrueAsync(() => Task.FromResult(a.StdoutLines.Count(l => l.StartsWith("OUTCOME", StringComparison.Ordinal)) >= 50), HaCluster.Wait, cluster.Describe);
        var beforeRestart = a.StdoutLines.Count;

        await cluster.Server.RestartImmediateAsync();

        Assert.NotNull(await a.WaitForLineAsync(TimeSpan.FromMinutes(3), "DONE"));
        var lines = a.StdoutLines;
        var committed = lines.Count(l => l.StartsWith("OUTCOME", StringComparison.Ordinal) && l.EndsWith(" Committed", StringComparison.Ordinal));
        var afterRestart = lines.Skip(beforeRestart).Count(l => l.StartsWith("OUTCOME", StringComparison.Ordinal) && l.EndsWith(" Committed", StringComparison.Ordinal));
        var errors = lines.Count(l => l.StartsWith("ERROR", StringComparison.Ordinal));
        output.WriteLine($"committed {committed} (after the restart: {afterRestart}), errors {errors}");

        // Whatever the crash left in doubt is resolved (by the logged decisions, or presumed abort) ...
        await Eventually.TrueAsync(async () => await cluster.PreparedAsync() == 0, TimeSpan.FromMinutes(2), cluster.Describe);

        // ... atomically: both databases saw the same transfers; every acknowledged commit is there; at most the
        // transactions whose commit call failed during the crash are there besides.
        var (sumA, sumB) = await cluster.SumsAsync();
        Assert.Equal(sumA, sumB);
        Assert.InRange(sumA, committed, committed + errors);
        Assert.True(afterRestart > 0, $"no transaction committed after the restart: the nodes did not reconnect\n{cluster.Describe()}");
        Assert.DoesNotContain(lines, l => l == "FENCED");
    }
}
