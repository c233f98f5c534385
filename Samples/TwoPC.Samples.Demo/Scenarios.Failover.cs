using System.Diagnostics;
using TwoPC.Client;

namespace TwoPC.Samples.Demo;

// Scenario 8: two coordinator nodes on a shared PostgreSQL log; the one that owns a checkout dies mid phase 2.
internal sealed partial class Scenarios
{
    private async Task FailoverAsync(CancellationToken cancellationToken)
    {
        say.Heading("8. Failover: two coordinator nodes on a shared log, the owner of a checkout is killed");
        say.Story($"The coordinator moves onto a shared PostgreSQL log (TwoPC:Log:Kind=PostgreSql) as node {DemoEnvironment.PrimaryNode}, and a");
        say.Story($"second node, {DemoEnvironment.StandbyNode}, joins it. Each node holds a lease (3 s here, 10 s by default) whose epoch fences its");
        say.Story("decision writes. grace buys a mug for 8.00 through the first node; the payment service holds that node's");
        say.Story("commit call, the node is SIGKILLed mid phase 2 -- and this time nobody restarts it: when its lease");
        say.Story($"expires, {DemoEnvironment.StandbyNode} fences it, reads its logged decision and finishes the checkout.");
        var standby = await env.StartHighAvailabilityAsync(cancellationToken);
        using var standbyHttp = standby.Http;
        say.Story($"Both nodes up ({env.Coordinator.Url}, {env.Standby!.Url}) behind the coordinator's old address, where a forwarder");
        say.Story("plays the load balancer: each connection goes to the first node that accepts it.");
        var before = await ShopState.ReadAsync(env, cancellationToken);
        var mark = Narrator.Mark(env);
        using (var hold = await env.Http.PostAsync(new Uri(env.Payments.Url, "demo/hold-next-commit"), null, cancellationToken))
        {
            hold.EnsureSuccessStatusCode();
        }

        var heldFrom = env.Payments.Process.LineCount;
        var checkout = _shop.CheckoutAsync("grace", "mug", 1, cancellationToken);
        var held = await env.Payments.Process.WaitForLineAsync(l => l == "commit-held", TimeSpan.FromSeconds(30), cancellationToken, heldFrom);
        if (!say.Expect(held is not null, "the payment service is holding the first node's commit call"))
        {
            return;
        }

        var during = await WaitForStateAsync(s => s.Orders.Count > before.Orders.Count, TimeSpan.FromSeconds(10), cancellationToken);
        env.KillCoordinator();
        var clock = Stopwatch.StartNew();
        var answer = await checkout;
        say.Story($"SIGKILL the first node. POST /checkout -> {answer}");
        var orderId = during.Orders.Except(before.Orders).Select(o => o.OrderId).FirstOrDefault() ?? answer.OrderId;
        var settled = await WaitForStateAsync(s => s.Prepared.Count == 0 && s.Payments.Any(p => p.OrderId == orderId) && s.Shipments.Any(p => p.OrderId == orderId), TimeSpan.FromSeconds(30), cancellationToken);
        var status = answer.TransactionId is null ? null : await WaitForCommittedAsync(standby, answer.TransactionId, cancellationToken);
        say.Story($"Settled {clock.Elapsed.TotalSeconds:0.0} s after the kill (lease 3 s); {DemoEnvironment.StandbyNode} reports transaction {answer.TransactionId}: {status?.State.ToString() ?? "?"}.");
        await QuoteAsync(mark, answer, cancellationToken, "Took over");
        settled.Print(say, before);
        say.Expect(env.Standby.Process.Lines().Any(l => l.Contains($"Took over coordinator node {DemoEnvironment.PrimaryNode}", StringComparison.Ordinal)),
            $"{DemoEnvironment.StandbyNode} took over the dead node (its log says so)");
        say.Expect(status?.State == TransactionStateDto.Committed, $"{DemoEnvironment.StandbyNode} reports the dead node's transaction Committed", status?.State.ToString());
        say.Expect(settled.Payments.Count(p => p.OrderId == orderId) == 1 && settled.Orders.Count(o => o.OrderId == orderId) == 1,
            "order and payment each committed exactly once");
        say.Expect(settled.Wallets["grace"] == before.Wallets["grace"] - 8m && settled.Stock["mug"] == before.Stock["mug"] - 1, "8.00 left grace's wallet and one mug the stock",
            $"grace {Narrator.Money(before.Wallets["grace"])} -> {Narrator.Money(settled.Wallets["grace"])}, mugs {before.Stock["mug"]} -> {settled.Stock["mug"]}");
        say.Expect(settled.Shipments.Count(s => s.OrderId == orderId) == 1, "exactly one shipment");
        await invariants.CheckAsync(env, say, cancellationToken);

        say.Story($"{DemoEnvironment.PrimaryNode} is restarted: it takes its lease back under a new epoch and rejoins. The forwarder now");
        say.Story("spreads connections over both nodes, so a checkout's calls land on either; a node forwards a request");
        say.Story("about the other's transaction to it (Coordinator:Cluster:Nodes).");
        await env.RestartCoordinatorAsync(cancellationToken);
        env.SpreadOverNodes();
        var load = options with { LoadCount = Math.Min(options.LoadCount, 60), Concurrency = Math.Min(options.Concurrency, 8) };
        var answers = await new LoadRun(env, say, invariants, load, $"8b. Load across both nodes: {load.LoadCount} checkouts, {load.Concurrency} at a time").RunAsync(cancellationToken);
        var byNode = answers.Where(a => a.TransactionId is not null).GroupBy(a => a.TransactionId!.Split('.')[0], StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
        say.Expect(byNode.ContainsKey(DemoEnvironment.PrimaryNode) && byNode.ContainsKey(DemoEnvironment.StandbyNode),
            "both nodes began checkouts (a transaction id names its node)", string.Join(", ", byNode.Select(kv => $"{kv.Key}: {kv.Value}")));
    }

    private static async Task<TransactionStatusDto?> WaitForCommittedAsync(TwoPCClient client, string transactionId, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        TransactionStatusDto? status = null;
        while (clock.Elapsed < TimeSpan.FromSeconds(30))
        {
            status = await client.GetStatusAsync(transactionId, cancellationToken);
            if (status.State is TransactionStateDto.Committed or TransactionStateDto.RolledBack or TransactionStateDto.Heuristic)
            {
                return status;
            }

            await Task.Delay(100, cancellationToken);
        }

        return status;
    }
}
