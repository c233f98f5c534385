using System.Net.Http.Json;
using System.Text.Json;

namespace TwoPC.Samples.Demo;

/// <summary>The demo's customer: calls the order service's <c>POST /checkout</c>.</summary>
internal sealed class Shop(DemoEnvironment env)
{
    /// <summary>Unit prices the demo's customers pay (the order service takes the amount it is given).</summary>
    public static readonly IReadOnlyDictionary<string, decimal> Prices = new Dictionary<string, decimal>(StringComparer.Ordinal)
    {
        ["book"] = 12.50m, ["mug"] = 8.00m, ["pen"] = 2.50m, ["lamp"] = 45.00m, ["chair"] = 79.00m,
    };

    public static decimal Price(string sku, int quantity) => (Prices.TryGetValue(sku, out var price) ? price : 10m) * quantity;

    public async Task<CheckoutAnswer> CheckoutAsync(string customerId, string sku, int quantity, CancellationToken cancellationToken, decimal? amount = null)
    {
        var body = new { customerId, sku, quantity, amount = amount ?? Price(sku, quantity) };
        using var response = await env.Http.PostAsJsonAsync(new Uri(env.Orders.Url, "checkout"), body, cancellationToken);
        CheckoutAnswer? answer = null;
        try
        {
            answer = await response.Content.ReadFromJsonAsync<CheckoutAnswer>(cancellationToken);
        }
        catch (JsonException)
        {
        }

        return (answer ?? new CheckoutAnswer(string.Empty, null, "Error", $"HTTP {(int)response.StatusCode} without a checkout answer", null)) with { Status = (int)response.StatusCode };
    }
}

/// <summary>The order service's answer (see TwoPC.Samples.Orders' CheckoutResult) and its HTTP status.</summary>
internal sealed record CheckoutAnswer(string OrderId, string? TransactionId, string Outcome, string? Reason, string? MessageId)
{
    public int Status { get; init; }

    public override string ToString() =>
        $"{Status} {Outcome} (order {OrderId}, transaction {TransactionId ?? "-"}){(Reason is null ? string.Empty : ": " + Reason)}";
}
