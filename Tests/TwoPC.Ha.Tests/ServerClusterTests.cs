using System.Globalization;
using System.Net;
using TwoPC.Client;
using TwoPC.Testing;
using TwoPC.TestServers.Internal;

namespace TwoPC.Ha.Tests;

/// <summary>
/// Two coordinator server processes on one shared log, each told the other's URL (<c>Coordinator:Cluster:Nodes</c>): a
/// request about a transaction that reaches the node that did not begin it is forwarded to the one that did; when that
/// node is dead, its status is answered from the shared log and anything else is refused (503).
/// </summary>
[Collection(HaCollection.Name)]
public sealed class ServerClusterTests(HaFixture fixture)
{
    [Fact]
    public async Task Requests_about_another_nodes_transaction_are_forwarded_and_its_status_outlives_it()
    {
        await using var cluster = await HaCluster.CreateAsync(fixture.Server);
        var (port1, port2) = (FreePort.OnLoopback(), FreePort.OnLoopback());
        using var node1 = await StartServerAsync(cluster, "srv-1", port1, "srv-2", port2);
        using var node2 = await StartServerAsync(cluster, "srv-2", port2, "srv-1", port1);
        using var http1 = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port1}/") };
        using var http2 = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port2}/") };
        var at1 = new TwoPCClient(http1);
        var at2 = new TwoPCClient(http2);

        // Begun at srv-1, committed through srv-2: forwarded, so srv-1 (which holds it) commits it.
        var first = await at1.BeginAsync();
        Assert.Equal(OutcomeKindDto.Committed, (await at2.CommitAsync(first.Id)).Kind);
        Assert.Equal(TransactionStateDto.Committed, (await at2.GetStatusAsync(first.Id)).State);

        // A live transaction of srv-1 read through srv-2: srv-1's own answer, with its deadline.
        var second = await at1.BeginAsync(TimeSpan.FromMinutes(5));
        var live = await at2.GetStatusAsync(second.Id);
        Assert.Equal(TransactionStateDto.Active, live.State);
        Assert.NotNull(live.Deadline);

        node1.Kill();

        // srv-1 is gone: the status comes from the shared log (no decision; srv-1 may still decide until it is fenced) ...
        Assert.Equal(TransactionStateDto.Active, (await at2.GetStatusAsync(second.Id)).State);

        // ... a commit cannot be done by another node: refused, not guessed.
        var refused = await Assert.ThrowsAsync<TwoPCApiException>(() => at2.CommitAsync(second.Id));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);

        // Once srv-2 has taken srv-1 over, presumed abort: no record.
        await Eventually.TrueAsync(async () => (await at2.GetStatusAsync(second.Id)).State == TransactionStateDto.Unknown, HaCluster.Wait, node2.Describe);

        // srv-2's own transactions are untouched by all this.
        var own = await at2.BeginAsync();
        Assert.Equal(OutcomeKindDto.Committed, (await own.CommitAsync()).Kind);
    }

    private static async Task<CrashHostProcess> StartServerAsync(HaCluster cluster, string node, int port, string other, int otherPort)
    {
        var process = CrashHostProcess.StartProgram("Coordinator/TwoPC.Coordinator.Server",
        [
            string.Create(CultureInfo.InvariantCulture, $"--Urls=http://127.0.0.1:{port}"),
            $"--TwoPC:NodeId={node}",
            "--TwoPC:Log:Kind=PostgreSql",
            $"--TwoPC:Log:ConnectionString={cluster.Log}",
            "--TwoPC:Log:LeaseDuration=00:00:02",
            "--TwoPC:Log:RenewInterval=00:00:00.500",
            "--TwoPC:TakeoverInterval=00:00:00.250",
            "--Coordinator:Authentication:AllowAnonymous=true",
            string.Create(CultureInfo.InvariantCulture, $"--Coordinator:Cluster:Nodes:{other}:Url=http://127.0.0.1:{otherPort}/"),
        ]);
        using var health = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/") };
        await Eventually.TrueAsync(async () => (await health.GetAsync("health")).IsSuccessStatusCode, HaCluster.Wait, process.Describe);
        return process;
    }
}
