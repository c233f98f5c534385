using Dapper;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;

namespace TwoPC.Samples.Demo;

internal sealed record OrderRow(string OrderId, string CustomerId, string Sku, int Quantity, decimal Amount);

internal sealed record PaymentRow(string OrderId, string CustomerId, decimal Amount);

internal sealed record ShipmentRow(string OrderId, string CustomerId, string Sku, int Quantity, string MessageId);

internal sealed record PreparedRow(string Database, string Gid, DateTime Prepared);

internal sealed record QueueDepth(string Queue, uint Ready, uint Consumers, bool Exists);

/// <summary>Everything the demo shows after a scenario: every table of the three databases, their prepared transactions, the queues.</summary>
internal sealed record ShopState(
    IReadOnlyList<OrderRow> Orders,
    IReadOnlyDictionary<string, int> Stock,
    IReadOnlyDictionary<string, decimal> Wallets,
    IReadOnlyList<PaymentRow> Payments,
    IReadOnlyList<ShipmentRow> Shipments,
    long InboxRows,
    IReadOnlyList<PreparedRow> Prepared,
    IReadOnlyList<QueueDepth> Queues)
{
    public const string ShippingQueue = "shipping.order-placed";
    public const string DeadLetterQueue = "twopc.dead-letter";
    public const string ParkedQueue = "twopc.parked";

    public QueueDepth Queue(string name) => Queues.Single(q => q.Queue == name);

    public static async Task<ShopState> ReadAsync(DemoEnvironment env, CancellationToken cancellationToken)
    {
        await using var orders = await env.OrdersDb.OpenConnectionAsync(cancellationToken);
        await using var payments = await env.PaymentsDb.OpenConnectionAsync(cancellationToken);
        await using var shipping = await env.ShippingDb.OpenConnectionAsync(cancellationToken);
        var orderRows = await orders.QueryAsync<OrderRow>(new CommandDefinition(
            "SELECT order_id AS OrderId, customer_id AS CustomerId, sku, quantity, amount FROM orders ORDER BY created_at, order_id", cancellationToken: cancellationToken));
        var stock = await orders.QueryAsync<(string Sku, int Quantity)>(new CommandDefinition("SELECT sku, quantity FROM stock ORDER BY sku", cancellationToken: cancellationToken));
        var wallets = await payments.QueryAsync<(string CustomerId, decimal Balance)>(new CommandDefinition("SELECT customer_id, balance FROM wallets ORDER BY customer_id", cancellationToken: cancellationToken));
        var paymentRows = await payments.QueryAsync<PaymentRow>(new CommandDefinition(
            "SELECT order_id AS OrderId, customer_id AS CustomerId, amount FROM payments ORDER BY paid_at, order_id", cancellationToken: cancellationToken));
        var shipments = await shipping.QueryAsync<ShipmentRow>(new CommandDefinition(
            "SELECT order_id AS OrderId, customer_id AS CustomerId, sku, quantity, message_id AS MessageId FROM shipments ORDER BY created_at, order_id", cancellationToken: cancellationToken));
        var inbox = await shipping.ExecuteScalarAsync<long>(new CommandDefinition(
            "SELECT CASE WHEN to_regclass('twopc.inbox') IS NULL THEN 0 ELSE (SELECT count(*) FROM twopc.inbox) END", cancellationToken: cancellationToken));
        var prepared = await orders.QueryAsync<PreparedRow>(new CommandDefinition(
            "SELECT database AS Database, gid AS Gid, prepared AS Prepared FROM pg_prepared_xacts ORDER BY prepared", cancellationToken: cancellationToken));
        var queues = new List<QueueDepth>();
        foreach (var queue in new[] { ShippingQueue, DeadLetterQueue, ParkedQueue })
        {
            queues.Add(await DepthAsync(env.Broker, queue, cancellationToken));
        }

        return new ShopState(
            [.. orderRows],
            stock.ToDictionary(s => s.Sku, s => s.Quantity, StringComparer.Ordinal),
            wallets.ToDictionary(w => w.CustomerId, w => w.Balance, StringComparer.Ordinal),
            [.. paymentRows],
            [.. shipments],
            inbox,
            [.. prepared],
            queues);
    }

    public static async Task<QueueDepth> DepthAsync(IConnection broker, string queue, CancellationToken cancellationToken)
    {
        await using var channel = await broker.CreateChannelAsync(cancellationToken: cancellationToken);
        try
        {
            var ok = await channel.QueueDeclarePassiveAsync(queue, cancellationToken);
            return new QueueDepth(queue, ok.MessageCount, ok.ConsumerCount, true);
        }
        catch (OperationInterruptedException)
        {
            return new QueueDepth(queue, 0, 0, false); // not declared (yet)
        }
    }

    /// <summary>Prints what changed since <paramref name="before"/> and then the state of every database and queue.</summary>
    public void Print(Narrator say, ShopState? before, int maxRows = 6)
    {
        if (before is not null)
        {
            say.Story("What changed:");
            var changes = 0;
            changes += Added(say, "orders", before.Orders, Orders, o => o.OrderId, o => $"{o.OrderId}  {o.CustomerId}  {o.Quantity} x {o.Sku}  {Narrator.Money(o.Amount)}", maxRows);
            changes += Changed(say, "stock", before.Stock, Stock, v => v.ToString(System.Globalization.CultureInfo.InvariantCulture), maxRows);
            changes += Changed(say, "wallets", before.Wallets, Wallets, Narrator.Money, maxRows);
            changes += Added(say, "payments", before.Payments, Payments, p => p.OrderId, p => $"{p.OrderId}  {p.CustomerId}  {Narrator.Money(p.Amount)}", maxRows);
            changes += Added(say, "shipments", before.Shipments, Shipments, s => s.OrderId, s => $"{s.OrderId}  {s.Quantity} x {s.Sku} to {s.CustomerId}  (message {s.MessageId})", maxRows);
            if (changes == 0)
            {
                say.Story("  nothing, in any database");
            }
        }

        say.Story("Now:");
        say.Story($"  orders db     orders {Rows(Orders.Count)} (total {Narrator.Money(Orders.Sum(o => o.Amount))});  stock {string.Join(" | ", Stock.Select(s => $"{s.Key} {s.Value}"))}");
        say.Story($"  payments db   payments {Rows(Payments.Count)};  wallets {string.Join(" | ", Wallets.Select(w => $"{w.Key} {Narrator.Money(w.Value)}"))}");
        say.Story($"  shipping db   shipments {Rows(Shipments.Count)};  inbox {InboxRows} message id{(InboxRows == 1 ? string.Empty : "s")}");
        var prepared = Prepared.GroupBy(p => p.Database).ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
        say.Story($"  pg_prepared_xacts   orders {prepared.GetValueOrDefault("orders")} | payments {prepared.GetValueOrDefault("payments")} | shipping {prepared.GetValueOrDefault("shipping")}");
        foreach (var row in Prepared.Take(3))
        {
            say.Story($"    {row.Database}: {row.Gid} (prepared {row.Prepared:HH:mm:ss.fff})");
        }

        var shipping = Queue(ShippingQueue);
        say.Story($"  RabbitMQ      {ShippingQueue} {shipping.Ready} ready ({shipping.Consumers} consumer{(shipping.Consumers == 1 ? string.Empty : "s")}) | {DeadLetterQueue} {Queue(DeadLetterQueue).Ready} | {ParkedQueue} {Queue(ParkedQueue).Ready}");
    }

    private static string Rows(int count) => count == 1 ? "1 row" : $"{count} rows";

    private static int Added<T>(Narrator say, string table, IReadOnlyList<T> before, IReadOnlyList<T> after, Func<T, string> key, Func<T, string> show, int maxRows)
    {
        var old = before.Select(key).ToHashSet(StringComparer.Ordinal);
        var added = after.Where(r => !old.Contains(key(r))).ToList();
        if (added.Count == 0)
        {
            return 0;
        }

        if (added.Count > maxRows)
        {
            say.Story($"  {table,-10} +{added.Count} rows");
            return added.Count;
        }

        foreach (var row in added)
        {
            say.Story($"  {table,-10} + {show(row)}");
        }

        return added.Count;
    }

    private static int Changed<T>(Narrator say, string table, IReadOnlyDictionary<string, T> before, IReadOnlyDictionary<string, T> after, Func<T, string> show, int maxRows)
        where T : IEquatable<T>
    {
        var changed = after.Where(a => !before.TryGetValue(a.Key, out var b) || !b.Equals(a.Value)).ToList();
        if (changed.Count == 0)
        {
            return 0;
        }

        var text = string.Join(" | ", changed.Take(maxRows * 2).Select(c => $"{c.Key} {(before.TryGetValue(c.Key, out var b) ? show(b) : "-")} -> {show(c.Value)}"));
        say.Story($"  {table,-10} {text}{(changed.Count > maxRows * 2 ? $" | ... ({changed.Count} changed)" : string.Empty)}");
        return changed.Count;
    }
}
