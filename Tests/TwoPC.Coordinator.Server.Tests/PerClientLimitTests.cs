using System.Net;
using System.Net.Http.Json;
using Microsoft.AspNetCore.Builder;
using TwoPC.Client;

namespace TwoPC.Coordinator.Server.Tests;

/// <summary>
/// Item 9 with authentication on: the live-transaction cap per client is per authenticated client, so one client that
/// abandons its begins is answered 503 + Retry-After while another keeps working (real Kestrel on 127.0.0.1:0).
/// </summary>
public sealed class PerClientLimitTests : IAsyncLifetime
{
    private const string AlphaKey = "alpha-client-key-of-the-limit-test-0123456789";
    private const string BetaKey = "beta-client-key-of-the-limit-test-0123456789a";
    private readonly DirectoryInfo _log = Directory.CreateTempSubdirectory("twopc-per-client-");
    private WebApplication? _app;
    private Uri _url = null!;

    public async Task InitializeAsync()
    {
        _app = CoordinatorServer.BuildApp([
            "--Urls=http://127.0.0.1:0",
            "--TwoPC:NodeId=per-client",
            $"--TwoPC:LogDirectory={_log.FullName}",
            "--Coordinator:Authentication:AllowAnonymous=false",
            $"--Coordinator:Clients:alpha:ApiKey={AlphaKey}",
            $"--Coordinator:Clients:beta:ApiKey={BetaKey}",
            "--Coordinator:Limits:MaxLiveTransactions=10",
            "--Coordinator:Limits:MaxLiveTransactionsPerClient=3",
            "--Logging:LogLevel:Default=Warning",
        ]);
        await _app.StartAsync();
        _url = new Uri(ServerFixture.BoundAddress(_app) + "/");
    }

    public async Task DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }

        _log.Delete(recursive: true);
    }

    [Fact]
    public async Task Item09_one_authenticated_client_at_its_cap_gets_503_while_another_still_begins()
    {
        using var alpha = new HttpClient(new ApiKeyHandler(AlphaKey, new SocketsHttpHandler())) { BaseAddress = _url };
        using var beta = new HttpClient(new ApiKeyHandler(BetaKey, new SocketsHttpHandler())) { BaseAddress = _url };
        var alphas = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            alphas.Add(await BeginAsync(alpha));
        }

        using var refused = await alpha.PostAsJsonAsync("transactions", new { timeoutSeconds = 60 });
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.Equal("application/problem+json", refused.Content.Headers.ContentType?.MediaType);
        Assert.True(refused.Headers.RetryAfter?.Delta > TimeSpan.Zero, $"Retry-After: {refused.Headers.RetryAfter}");

        await BeginAsync(beta); // another client is not held back by alpha's abandoned begins

        using var rolledBack = await alpha.PostAsync($"transactions/{alphas[0]}/rollback", null);
        Assert.Equal(HttpStatusCode.OK, rolledBack.StatusCode);
        await BeginAsync(alpha); // a slot of alpha's came back when one of its transactions ended
    }

    private static async Task<string> BeginAsync(HttpClient client)
    {
        using var response = await client.PostAsJsonAsync("transactions", new { timeoutSeconds = 60 });
        Assert.True(response.StatusCode == HttpStatusCode.Created, $"begin: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        return (await response.Content.ReadFromJsonAsync<BeginTransactionResponse>())!.Id;
    }
}
