using TwoPC.Client;
using TwoPC.TestServers.Internal;

namespace TwoPC.Samples.Demo;

// The failover scenario's deployment: two coordinator nodes on a shared PostgreSQL log.
internal sealed partial class DemoEnvironment
{
    private TcpForwarder? _forwarder;

    public const string PrimaryNode = "ha-node-1";

    public const string StandbyNode = "ha-node-2";

    /// <summary>
    /// Moves the coordinator from its file log onto a shared PostgreSQL log (database <c>coordinator_log</c>) and starts a
    /// second node, <see cref="StandbyNode"/>, on it: short leases (3 s) so the demo does not wait long for a takeover. The
    /// services keep the coordinator's address, where a forwarder (the load balancer) reaches the first live node; a
    /// participant accepts every node's callbacks from a shared-log cluster.
    /// Both nodes get new node ids: a node id names one log's transactions, and the file log's coordinator-1 already
    /// issued coordinator-1.1.* (reusing it on a new log would reissue those ids — and their message ids).
    /// </summary>
    /// <returns>A status client of the second node.</returns>
    public async Task<TwoPCClient> StartHighAvailabilityAsync(CancellationToken cancellationToken)
    {
        // Nothing may be left for the file log's recovery: its decisions would not move to the shared log.
        for (var i = 0; i < 300 && (await AdminClient.ListInDoubtAsync(cancellationToken)).Count > 0; i++)
        {
            await Task.Delay(100, cancellationToken);
        }

        var logDatabase = await Postgres.CreateDatabaseAsync("coordinator_log", cancellationToken);
        string[] sharedLog =
        [
            "--TwoPC:Log:Kind=PostgreSql",
            $"--TwoPC:Log:ConnectionString={logDatabase}",
            "--TwoPC:Log:LeaseDuration=00:00:03",
            "--TwoPC:Log:RenewInterval=00:00:01",
            "--TwoPC:TakeoverInterval=00:00:00.250",
        ];
        var common = Coordinator.Arguments.Where(a => !a.StartsWith("--TwoPC:LogDirectory=", StringComparison.Ordinal)).ToList();
        var (firstPort, secondPort) = (FreePort.OnLoopback(), FreePort.OnLoopback());

        // Each node knows the other's URL: a request about a transaction that reaches the node that did not begin it is forwarded.
        string[] cluster = [$"--Coordinator:Cluster:Nodes:{PrimaryNode}:Url={Url(firstPort)}", $"--Coordinator:Cluster:Nodes:{StandbyNode}:Url={Url(secondPort)}"];
        var first = new ServiceEndpoint(PrimaryNode, Coordinator.Project, firstPort, [.. common.Select(a => a == $"--TwoPC:NodeId={CoordinatorNode}" ? $"--TwoPC:NodeId={PrimaryNode}" : a), .. sharedLog, .. cluster]);
        var second = new ServiceEndpoint(StandbyNode, Coordinator.Project, secondPort,
            [.. common.Select(a => a == $"--TwoPC:NodeId={CoordinatorNode}" ? $"--TwoPC:NodeId={StandbyNode}" : a), .. sharedLog, .. cluster]);
        if (Coordinator.Current is { } old)
        {
            old.Kill();
            _retired.Add(old);
        }

        // The services and the demo keep the coordinator's address: a forwarder on it plays the load balancer.
        _forwarder = new TcpForwarder(Coordinator.Url.Port, [first.Url.Port, second.Url.Port]);
        Coordinator = first;
        Standby = second;
        await Task.WhenAll(StartServiceAsync(first, cancellationToken), StartServiceAsync(second, cancellationToken));
        var reader = new HttpClient { BaseAddress = second.Url, Timeout = TimeSpan.FromSeconds(30) };
        reader.DefaultRequestHeaders.Add(AdminKeyHeader, _adminKey);
        return new TwoPCClient(reader);
    }

    /// <summary>The forwarder spreads new connections over both nodes (the load part of the failover scenario).</summary>
    public void SpreadOverNodes() => _forwarder!.RoundRobin = true;
}
