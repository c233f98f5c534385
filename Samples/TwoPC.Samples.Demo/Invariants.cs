using System.Diagnostics;

namespace TwoPC.Samples.Demo;

/// <summary>
/// What must hold after every scenario, whatever failed or crashed: money and stock are conserved, every order has
/// exactly its payment and (once the queue drained) exactly one shipment, and nothing is left prepared, parked,
/// dead-lettered or heuristic.
/// </summary>
internal sealed class Invariants
{
    private readonly decimal _money;
    private readonly IReadOnlyDictionary<string, int> _stock;

    private Invariants(decimal money, IReadOnlyDictionary<string, int> stock)
    {
        _money = money;
        _stock = stock;
    }

    public decimal InitialMoney => _money;

    public int InitialUnits => _stock.Values.Sum();

    /// <summary>Takes the totals to conserve from the state before any scenario.</summary>
    public static Invariants Baseline(ShopState state) => new(
        state.Wallets.Values.Sum() + state.Orders.Sum(o => o.Amount),
        state.Stock.ToDictionary(s => s.Key, s => s.Value + state.Orders.Where(o => o.Sku == s.Key).Sum(o => o.Quantity), StringComparer.Ordinal));

    /// <summary>Waits (up to <paramref name="timeout"/>) for the shipping consumer to catch up and for phase 2 to finish.</summary>
    public static async Task<ShopState> SettleAsync(DemoEnvironment env, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var state = await ShopState.ReadAsync(env, cancellationToken);
            var settled = state.Prepared.Count == 0
                && state.Queue(ShopState.ShippingQueue).Ready == 0
                && state.Shipments.Count == state.Orders.Count;
            if (settled || clock.Elapsed > timeout)
            {
                return state;
            }

            await Task.Delay(100, cancellationToken);
        }
    }

    /// <summary>Checks every invariant on a settled state; prints each with its numbers.</summary>
    public async Task<bool> CheckAsync(DemoEnvironment env, Narrator say, CancellationToken cancellationToken)
    {
        var state = await SettleAsync(env, TimeSpan.FromSeconds(30), cancellationToken);
        var ok = true;
        say.Story("Invariants:");

        var wallets = state.Wallets.Values.Sum();
        var ordered = state.Orders.Sum(o => o.Amount);
        ok &= say.Expect(wallets + ordered == _money,
            $"money conserved: wallets {Narrator.Money(wallets)} + committed orders {Narrator.Money(ordered)} = {Narrator.Money(wallets + ordered)} (initially {Narrator.Money(_money)})");

        var badStock = _stock
            .Select(s => (s.Key, Expected: s.Value, Actual: state.Stock.GetValueOrDefault(s.Key) + state.Orders.Where(o => o.Sku == s.Key).Sum(o => o.Quantity)))
            .Where(s => s.Expected != s.Actual)
            .ToList();
        var units = state.Stock.Values.Sum();
        var sold = state.Orders.Sum(o => o.Quantity);
        ok &= say.Expect(badStock.Count == 0,
            $"stock conserved per sku: {units} in stock + {sold} ordered = {units + sold} units (initially {_stock.Values.Sum()})",
            badStock.Count == 0 ? null : string.Join(", ", badStock.Select(s => $"{s.Key}: {s.Actual} vs {s.Expected}")));

        var orders = state.Orders.Select(o => (o.OrderId, o.CustomerId, o.Amount)).ToHashSet();
        var payments = state.Payments.Select(p => (p.OrderId, p.CustomerId, p.Amount)).ToHashSet();
        ok &= say.Expect(orders.SetEquals(payments) && state.Payments.Count == payments.Count,
            $"every order has its payment and every payment its order: {orders.Count} orders, {state.Payments.Count} payments",
            orders.SetEquals(payments) ? null : $"unpaid orders {orders.Except(payments).Count()}, payments without order {payments.Except(orders).Count()}");

        var orderIds = state.Orders.Select(o => o.OrderId).ToHashSet(StringComparer.Ordinal);
        var shipped = state.Shipments.Select(s => s.OrderId).ToHashSet(StringComparer.Ordinal);
        ok &= say.Expect(orderIds.SetEquals(shipped),
            $"shipments = committed orders: {state.Shipments.Count} shipments for {orderIds.Count} orders, queue drained ({state.Queue(ShopState.ShippingQueue).Ready} ready)",
            orderIds.SetEquals(shipped) ? null : $"orders without shipment {orderIds.Except(shipped).Count()}, shipments without order {shipped.Except(orderIds).Count()}");

        ok &= say.Expect(state.Prepared.Count == 0,
            $"no prepared transaction left in any database (pg_prepared_xacts: {state.Prepared.Count})",
            state.Prepared.Count == 0 ? null : string.Join(", ", state.Prepared.Select(p => $"{p.Database}: {p.Gid}")));

        var deadLettered = state.Queue(ShopState.DeadLetterQueue).Ready;
        var parked = state.Queue(ShopState.ParkedQueue).Ready;
        ok &= say.Expect(deadLettered == 0 && parked == 0, $"nothing dead-lettered ({deadLettered}) or parked as unroutable ({parked})");

        var heuristics = await env.AdminClient.ListHeuristicsAsync(cancellationToken);
        ok &= say.Expect(heuristics.Count == 0, $"no heuristic outcome at the coordinator ({heuristics.Count})");
        return ok;
    }
}
