using TwoPC.Client;

namespace TwoPC.Samples.Readme;

/// <summary>README "As a standalone coordinator service" (the caller) and the TwoPC.Client package README.</summary>
public static class ClientSnippets
{
    /// <summary>A request body.</summary>
    public sealed record Payment(string CustomerId, decimal Amount);

    /// <summary>A message body.</summary>
    public sealed record OrderPlaced(string OrderId);

    /// <summary>README.md, section "As a standalone coordinator service, with remote participants".</summary>
    public static async Task<OutcomeDto> StandaloneAsync(string apiKey, HttpClient http, Payment payment, OrderPlaced orderPlaced)
    {
        #region readme
        // using TwoPC.Client;
        var twopc = new TwoPCClient(new HttpClient(new ApiKeyHandler(apiKey, new SocketsHttpHandler())) { BaseAddress = new("http://127.0.0.1:5080/") });
        await using var tx = await twopc.BeginAsync(TimeSpan.FromSeconds(30));   // disposing without commit rolls back
        using var paid = await http.PostInTransactionAsync("http://payments/payments", payment, tx); // sends TwoPC-Transaction-Id
        await tx.PublishAsync("orders", "order.placed", orderPlaced, type: "OrderPlaced");         // published iff it commits
        var outcome = await tx.CommitAsync();                                                      // Committed / RolledBack / Heuristic*
        #endregion
        return outcome;
    }

    /// <summary>Coordinator/TwoPC.Client/README.md.</summary>
    public static async Task<OutcomeDto> PackageAsync(string apiKey, HttpClient http, Payment payment)
    {
        #region package
        // using TwoPC.Client;
        var twopc = new TwoPCClient(new HttpClient(new ApiKeyHandler(apiKey, new SocketsHttpHandler()))
        {
            BaseAddress = new("http://127.0.0.1:5080/"),
        });
        await using var tx = await twopc.BeginAsync(TimeSpan.FromSeconds(30));     // disposing without commit rolls back
        using var paid = await http.PostInTransactionAsync("http://payments/payments", payment, tx);
        var outcome = await tx.CommitAsync();                                      // Committed / RolledBack / Heuristic*
        #endregion
        return outcome;
    }
}
