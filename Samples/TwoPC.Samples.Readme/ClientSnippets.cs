using System.Net.Http.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using TwoPC.Client;

namespace TwoPC.Samples.Readme;

/// <summary>README "As a standalone coordinator service" (the caller) and the TwoPC.Client package README.</summary>
public static class ClientSnippets
{
    /// <summary>A request body.</summary>
    public sealed record Payment(string CustomerId, decimal Amount);

    /// <summary>A message body.</summary>
    public sealed record OrderPlaced(string OrderId);

    /// <summary>README.md, section "As a standalone coordinator service, with remote participants": the registration.</summary>
    public static void Register(HostApplicationBuilder builder, Uri paymentsUrl)
    {
        #region readme
        builder.Services.AddTwoPCClient(builder.Configuration.GetSection("TwoPCClient"));    // TwoPCClient:BaseAddress, TwoPCClient:ApiKey
        builder.Services.AddHttpClient("payments", c => c.BaseAddress = paymentsUrl).AddTwoPCTransactionPropagation();
        #endregion
    }

    /// <summary>README.md, same section: the transaction, with the injected client and the <c>payments</c> client.</summary>
    public static async Task<OutcomeDto> TransactionAsync(TwoPCClient twopc, HttpClient payments, Payment payment)
    {
        #region transaction
        await using var tx = await twopc.BeginAsync(TimeSpan.FromSeconds(30));   // disposing without commit rolls back
        using (tx.Enter())                                                        // calls inside send TwoPC-Transaction-Id
        {
            using var paid = await payments.PostAsJsonAsync("payments", payment);
            paid.EnsureSuccessStatusCode();
        }

        var outcome = await tx.CommitAsync();                                      // Committed / RolledBack / Heuristic*
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
