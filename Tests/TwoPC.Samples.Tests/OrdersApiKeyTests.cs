using System.Net;
using System.Net.Http.Json;
using TwoPC.Client;

namespace TwoPC.Samples.Tests;

/// <summary>Issue 12, item 5: the order service runs its checkouts as its own client of the coordinator (Coordinator:ApiKey).</summary>
[Collection(SampleServicesCollection.Name)]
public sealed class OrdersApiKeyTests(SampleServicesFixture services)
{
    [Fact]
    public async Task Item05_A_checkout_is_the_order_service_clients_transaction_and_nobody_elses()
    {
        // Any checkout will do: this one rolls back (the coordinator has no RabbitMQ to stage its event).
        using var response = await services.Http.PostAsJsonAsync(new Uri(services.OrdersUrl, "checkout"), new { customerId = "carol", sku = "book", quantity = 1, amount = 12.50m });
        var answer = await response.Content.ReadFromJsonAsync<Answer>();
        Assert.NotNull(answer?.TransactionId);

        // With the order service's key its transaction is there ...
        using var orders = new HttpClient(new ApiKeyHandler(SampleServicesFixture.OrdersApiKey, new SocketsHttpHandler())) { BaseAddress = services.CoordinatorUrl };
        var status = await new TwoPCClient(orders).GetStatusAsync(answer.TransactionId);
        Assert.Equal(answer.TransactionId, status.Id);
        Assert.NotEqual(TransactionStateDto.Unknown, status.State);

        // ... and an anonymous caller (this coordinator allows them, on loopback) cannot decide it: it began none of it.
        using var anonymous = await services.Coordinator.Http.PostAsync($"transactions/{answer.TransactionId}/rollback", null);
        Assert.Equal(HttpStatusCode.NotFound, anonymous.StatusCode);
    }

    private sealed record Answer(string? TransactionId, string? Outcome);
}
