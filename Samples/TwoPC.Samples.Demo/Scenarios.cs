using System.Diagnostics;
using System.Text.Json;
using Dapper;
using RabbitMQ.Client;
using TwoPC.Client;

namespace TwoPC.Samples.Demo;

/// <summary>The demo's scenarios: each tells what happens, shows what the services logged and what changed, and checks.</summary>
internal sealed partial class Scenarios(DemoEnvironment env, Narrator say, Invariants invariants, DemoOptions options)
{
    private readonly Shop _shop = new(env);

    public Task RunAsync(string scenario, CancellationToken cancellationToken) => scenario switch
    {
        "success" => SuccessAsync(cancellationToken),
        "funds" => InsufficientFundsAsync(cancellationToken),
        "stock" => OutOfStockAsync(cancellationToken),
        "crash" => CoordinatorCrashAsync(cancellationToken),
        "duplicate" => DuplicateDeliveryAsync(cancellationToken),
        "load" => new LoadRun(env, say, invariants, options).RunAsync(cancellationToken) as Task,
        "embedded" => EmbeddedAsync(cancellationToken),
        "failover" => FailoverAsync(cancellationToken),
        _ => throw new ArgumentOutOfRangeException(nameof(scenario), scenario, "unknown scenario"),
    };

    private async Task SuccessAsync(CancellationToken cancellationToken)
    {
        say.Heading("1. A successful checkout");
        say.Story("alice buys 2 books for 25.00. The order service begins a global transaction at the coordinator,");
        say.Story("reserves the stock and writes the order in its own branch and PREPAREs it, has the payment service");
        say.Story("debit alice's wallet in a second branch (prepared before it answers), stages an OrderPlaced event at");
        say.Story("the coordinator, and commits: the coordinator forces its decision to its log, commits both databases");
        say.Story("and publishes the event with publisher confirms. Shipping consumes it.");
        var before = await ShopState.ReadAsync(env, cancellationToken);
        var mark = Narrator.Mark(env);

        var answer = await _shop.CheckoutAsync("alice", "book", 2, cancellationToken);
        say.Story($"POST /checkout -> {answer}");
        var shipped = await WaitForShipmentAsync(answer.OrderId, cancellationToken);

        var after = await ShopState.ReadAsync(env, cancellationToken);
        await QuoteAsync(mark, answer, cancellationToken);
        after.Print(say, before);
        say.Expect(answer is { Status: 200, Outcome: "Committed" }, "the checkout answered 200 Committed", answer.ToString());
        say.Expect(after.Orders.Any(o => o.OrderId == answer.OrderId) && after.Payments.Any(p => p.OrderId == answer.OrderId),
            "the order (orders db) and its payment (payments db) both committed");
        say.Expect(after.Stock["book"] == before.Stock["book"] - 2 && after.Wallets["alice"] == before.Wallets["alice"] - 25m,
            "2 books left the stock and 25.00 left alice's wallet");
        say.Expect(shipped, "the OrderPlaced event was published and shipping recorded the shipment");
        await invariants.CheckAsync(env, say, cancellationToken);
    }

    private async Task InsufficientFundsAsync(CancellationToken cancellationToken)
    {
        var before = await ShopState.ReadAsync(env, cancellationToken);
        var balance = before.Wallets["bob"];
        say.Heading("2. Insufficient funds: the payment branch votes No");
        say.Story($"bob has {Narrator.Money(balance)} and buys a lamp for 45.00. The orders branch reserves the lamp and prepares.");
        say.Story("The payment service's UPDATE of the wallet succeeds, but its deferred constraint trigger runs at");
        say.Story("PREPARE TRANSACTION: the payment branch votes No (409), so the order service rolls the global");
        say.Story("transaction back -- the coordinator rolls back the already prepared orders branch. No event is staged.");
        var mark = Narrator.Mark(env);

        var answer = await _shop.CheckoutAsync("bob", "lamp", 1, cancellationToken);
        say.Story($"POST /checkout -> {answer}");

        await Task.Delay(500, cancellationToken); // let a (wrongly) published event arrive, if there were one
        var after = await ShopState.ReadAsync(env, cancellationToken);
        await QuoteAsync(mark, answer, cancellationToken);
        after.Print(say, before);
        say.Expect(answer is { Status: 409, Outcome: "RolledBack" } && answer.Reason?.Contains("insufficient funds", StringComparison.Ordinal) == true,
            "the checkout answered 409 RolledBack: insufficient funds (a No vote at PREPARE)", answer.ToString());
        say.Expect(Unchanged(before, after), "no order, no stock change, no debit, no payment, no shipment, no message");
        await invariants.CheckAsync(env, say, cancellationToken);
    }

    private async Task OutOfStockAsync(CancellationToken cancellationToken)
    {
        var before = await ShopState.ReadAsync(env, cancellationToken);
        say.Heading("3. Out of stock: the orders branch fails");
        say.Story($"erin buys 5 lamps (225.00); {before.Stock["lamp"]} are in stock. The orders branch's checked UPDATE reserves");
        say.Story("nothing, so the branch rolls back (it would vote No) and the order service rolls the transaction back");
        say.Story("before the payment service is called: nothing happens anywhere.");
        var mark = Narrator.Mark(env);

        var answer = await _shop.CheckoutAsync("erin", "lamp", 5, cancellationToken);
        say.Story($"POST /checkout -> {answer}");

        await Task.Delay(500, cancellationToken);
        var after = await ShopState.ReadAsync(env, cancellationToken);
        await QuoteAsync(mark, answer, cancellationToken);
        after.Print(say, before);
        say.Expect(answer is { Status: 409, Outcome: "RolledBack" } && answer.Reason?.Contains("out of stock", StringComparison.Ordinal) == true,
            "the checkout answered 409 RolledBack: out of stock", answer.ToString());
        say.Expect(Unchanged(before, after), "no order, no stock change, no debit, no payment, no shipment, no message");
        await invariants.CheckAsync(env, say, cancellationToken);
    }

    private async Task CoordinatorCrashAsync(CancellationToken cancellationToken)
    {
        say.Heading("4. The coordinator is SIGKILLed after its decision");
        say.Story("carol buys a mug for 8.00. The payment service is told to hold the coordinator's next commit call");
        say.Story("(POST /demo/hold-next-commit, Demo:Chaos=true): when it arrives, the decision is already forced to the");
        say.Story("coordinator's log. Then the coordinator is killed with SIGKILL, mid phase 2, and started again on the");
        say.Story("same log: recovery re-drives the logged decision and the checkout completes everywhere.");
        var before = await ShopState.ReadAsync(env, cancellationToken);
        var mark = Narrator.Mark(env);
        using (var hold = await env.Http.PostAsync(new Uri(env.Payments.Url, "demo/hold-next-commit"), null, cancellationToken))
        {
            hold.EnsureSuccessStatusCode();
        }

        var heldFrom = env.Payments.Process.LineCount;
        var checkout = _shop.CheckoutAsync("carol", "mug", 1, cancellationToken);
        var held = await env.Payments.Process.WaitForLineAsync(l => l == "commit-held", TimeSpan.FromSeconds(30), cancellationToken, heldFrom);
        if (!say.Expect(held is not null, "the payment service is holding the coordinator's commit call"))
        {
            return;
        }

        // Phase 2 runs in parallel: wait for the orders branch to commit, so the crash leaves the two databases apart.
        var during = await WaitForStateAsync(s => s.Orders.Count > before.Orders.Count, TimeSpan.FromSeconds(10), cancellationToken);
        env.KillCoordinator();
        var answer = await checkout;
        say.Story($"SIGKILL coordinator. POST /checkout -> {answer}");
        var crashed = await ShopState.ReadAsync(env, cancellationToken);
        say.Story("Right after the crash: the order is committed (and its event published), the payment is prepared and");
        say.Story("in doubt, holding its row lock on carol's wallet; only the coordinator's log knows the decision:");
        crashed.Print(say, before);
        if (crashed.Prepared.Count == 0)
        {
            say.Story("(the payment service's own recovery pass settled the branch before the kill)");
        }

        say.Story("Restarting the coordinator on the same port and log ...");
        var clock = Stopwatch.StartNew();
        await env.RestartCoordinatorAsync(cancellationToken);
        var orderId = during.Orders.Except(before.Orders).Select(o => o.OrderId).FirstOrDefault() ?? answer.OrderId;
        var settled = await WaitForStateAsync(s => s.Prepared.Count == 0 && s.Payments.Any(p => p.OrderId == orderId) && s.Shipments.Any(p => p.OrderId == orderId), TimeSpan.FromSeconds(30), cancellationToken);
        // The databases settle first; the coordinator reports Committed once every branch (the re-published event too) acknowledged.
        var status = answer.TransactionId is null ? null : await env.CoordinatorClient.GetStatusAsync(answer.TransactionId, cancellationToken);
        var statusClock = Stopwatch.StartNew();
        while (answer.TransactionId is not null && status?.State == TransactionStateDto.Committing && statusClock.Elapsed < TimeSpan.FromSeconds(30))
        {
            await Task.Delay(100, cancellationToken);
            status = await env.CoordinatorClient.GetStatusAsync(answer.TransactionId, cancellationToken);
        }

        say.Story($"Recovered in {clock.Elapsed.TotalSeconds:0.0} s; the coordinator now reports transaction {answer.TransactionId}: {status?.State.ToString() ?? "?"}.");
        await QuoteAsync(mark, answer, cancellationToken, "re-driving");
        settled.Print(say, crashed);
        say.Expect(answer is { Status: 502, Outcome: "Unknown" }, "the order service could not learn the outcome from the dead coordinator (502 Unknown)", answer.ToString());
        say.Expect(status?.State == TransactionStateDto.Committed, "after recovery the coordinator reports the transaction Committed", status?.State.ToString());
        say.Expect(settled.Payments.Count(p => p.OrderId == orderId) == 1 && settled.Orders.Count(o => o.OrderId == orderId) == 1,
            "order and payment each committed exactly once");
        say.Expect(settled.Wallets["carol"] == before.Wallets["carol"] - 8m && settled.Stock["mug"] == before.Stock["mug"] - 1, "8.00 left carol's wallet and one mug the stock");
        say.Expect(settled.Shipments.Count(s => s.OrderId == orderId) == 1, "exactly one shipment (a re-published event is absorbed by the inbox)");
        await invariants.CheckAsync(env, say, cancellationToken);
    }

    private async Task DuplicateDeliveryAsync(CancellationToken cancellationToken)
    {
        say.Heading("5. The same message delivered again: one shipment");
        say.Story("Delivery is at least once: a coordinator that re-publishes after a crash, or a consumer that dies");
        say.Story("between its commit and its ack, delivers a message again, under the same MessageId. dave buys");
        say.Story("3 pens; once shipped, the demo publishes the very same OrderPlaced (same MessageId) twice more");
        say.Story("straight to the exchange. Shipping's inbox (message id claimed in the shipment's transaction) skips both.");
        var before = await ShopState.ReadAsync(env, cancellationToken);
        var answer = await _shop.CheckoutAsync("dave", "pen", 3, cancellationToken);
        say.Story($"POST /checkout -> {answer}");
        if (!say.Expect(answer is { Status: 200, MessageId: not null } && await WaitForShipmentAsync(answer.OrderId, cancellationToken), "the checkout committed and was shipped once"))
        {
            return;
        }

        var mark = Narrator.Mark(env);
        var skippedFrom = env.Shipping.Process.LineCount;
        var body = JsonSerializer.SerializeToUtf8Bytes(new OrderPlaced(answer.OrderId, "dave", "pen", 3, Shop.Price("pen", 3)), JsonSerializerOptions.Web);
        await using (var channel = await env.Broker.CreateChannelAsync(new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true), cancellationToken))
        {
            var properties = new BasicProperties { Persistent = true, MessageId = answer.MessageId, Type = OrderPlaced.Type, ContentType = "application/json" };
            for (var i = 0; i < 2; i++)
            {
                await channel.BasicPublishAsync(OrderPlaced.Exchange, OrderPlaced.RoutingKey, mandatory: true, properties, body, cancellationToken);
            }
        }

        say.Story($"Published message {answer.MessageId} twice more (confirmed by the broker).");
        var skipped = 0;
        var clock = Stopwatch.StartNew();
        while (skipped < 2 && clock.Elapsed < TimeSpan.FromSeconds(15))
        {
            skipped = env.Shipping.Process.Lines(skippedFrom).Count(l => l.Contains(answer.MessageId!, StringComparison.Ordinal) && l.Contains("processed before", StringComparison.Ordinal));
            await Task.Delay(50, cancellationToken);
        }

        var after = await ShopState.ReadAsync(env, cancellationToken);
        await using var shipping = await env.ShippingDb.OpenConnectionAsync(cancellationToken);
        var inboxRows = await shipping.ExecuteScalarAsync<long>(new CommandDefinition("SELECT count(*) FROM twopc.inbox WHERE message_id = @id", new { id = answer.MessageId }, cancellationToken: cancellationToken));
        say.Quote(env, mark, answer.MessageId!);
        after.Print(say, before);
        say.Expect(skipped == 2, $"shipping received both copies and skipped them as processed before ({skipped} of 2)");
        say.Expect(after.Shipments.Count(s => s.OrderId == answer.OrderId) == 1 && inboxRows == 1, $"one shipment for the order, one inbox row for its message id ({inboxRows})");
        await invariants.CheckAsync(env, say, cancellationToken);
    }

    private async Task EmbeddedAsync(CancellationToken cancellationToken)
    {
        say.Heading("7. The embedded coordinator, in a few lines");
        say.Story("The same checkout without the coordinator service: Samples/TwoPC.Samples.Embedded hosts the");
        say.Story("coordinator itself (AddTwoPhaseCommit, its own log) with two PostgresResourceManagers -- the orders and");
        say.Story("payments databases -- and a RabbitMqResourceManager, and commits one checkout for frank (1 book, 12.50).");
        var before = await ShopState.ReadAsync(env, cancellationToken);
        var process = await env.RunEmbeddedAsync("frank", "book", 1, 12.50m, cancellationToken);
        var outcome = process.Lines().FirstOrDefault(l => l.StartsWith("outcome ", StringComparison.Ordinal));
        say.Story($"The embedded program printed: {outcome ?? "(nothing)"} (exit code {process.ExitCode})");
        var orderId = outcome?.Split(' ') is { Length: > 3 } words && words[2] == "order" ? words[3] : string.Empty;
        var shipped = await WaitForShipmentAsync(orderId, cancellationToken);
        var after = await ShopState.ReadAsync(env, cancellationToken);
        after.Print(say, before);
        if (!say.Expect(process.ExitCode == 0 && outcome?.StartsWith("outcome Committed", StringComparison.Ordinal) == true, "the embedded checkout committed"))
        {
            say.Line(process.Tail());
        }

        say.Expect(after.Orders.Any(o => o.OrderId == orderId) && after.Payments.Any(p => p.OrderId == orderId) && shipped,
            "its order, payment and shipment are there");
        await invariants.CheckAsync(env, say, cancellationToken);
    }

    private async Task QuoteAsync(LogMark mark, CheckoutAnswer answer, CancellationToken cancellationToken, params string[] more)
    {
        await Task.Delay(300, cancellationToken); // console loggers write asynchronously
        say.Quote(env, mark, [answer.OrderId, .. answer.TransactionId is null ? Array.Empty<string>() : [answer.TransactionId], .. more]);
    }

    private async Task<bool> WaitForShipmentAsync(string orderId, CancellationToken cancellationToken)
    {
        var state = await WaitForStateAsync(s => s.Shipments.Any(x => x.OrderId == orderId), TimeSpan.FromSeconds(15), cancellationToken);
        return state.Shipments.Any(x => x.OrderId == orderId);
    }

    private async Task<ShopState> WaitForStateAsync(Func<ShopState, bool> condition, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var state = await ShopState.ReadAsync(env, cancellationToken);
            if (condition(state) || clock.Elapsed > timeout)
            {
                return state;
            }

            await Task.Delay(50, cancellationToken);
        }
    }

    private static bool Unchanged(ShopState before, ShopState after) =>
        after.Orders.Count == before.Orders.Count
        && after.Payments.Count == before.Payments.Count
        && after.Shipments.Count == before.Shipments.Count
        && after.InboxRows == before.InboxRows
        && after.Stock.All(s => before.Stock[s.Key] == s.Value)
        && after.Wallets.All(w => before.Wallets[w.Key] == w.Value)
        && after.Queue(ShopState.ShippingQueue).Ready == 0;
}
