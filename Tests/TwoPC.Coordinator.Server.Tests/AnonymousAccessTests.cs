using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using Microsoft.AspNetCore.Builder;

namespace TwoPC.Coordinator.Server.Tests;

/// <summary>
/// Issue 12, item 5: anonymous access to the transaction API is an explicit setting, for loopback only, and the
/// start-up checks refuse configurations that would open the API.
/// </summary>
public sealed class AnonymousAccessTests : IDisposable
{
    private readonly DirectoryInfo _log = Directory.CreateTempSubdirectory("twopc-anon-");

    public void Dispose() => _log.Delete(recursive: true);

    [Fact]
    public async Task Item05_AllowAnonymous_on_a_non_loopback_address_refuses_to_start()
    {
        // 0.0.0.0 is every interface: the check refuses before the server binds it.
        var error = await StartFailsAsync("--Urls=http://0.0.0.0:0", "--Coordinator:Authentication:AllowAnonymous=true");
        Assert.Contains("Coordinator:Authentication:AllowAnonymous", error, StringComparison.Ordinal);
        Assert.Contains("0.0.0.0", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Item05_AllowAnonymous_on_loopback_serves_callers_without_credentials_but_refuses_wrong_ones()
    {
        await using var app = Build("--Urls=http://127.0.0.1:0", "--Coordinator:Authentication:AllowAnonymous=true",
            $"--Coordinator:Clients:alpha:ApiKey={AuthServerFixture.AlphaKey}");
        await app.StartAsync();
        using var http = new HttpClient { BaseAddress = new Uri(ServerFixture.BoundAddress(app) + "/") };

        using var begin = await http.PostAsJsonAsync("transactions", new { timeoutSeconds = 30 });
        Assert.Equal(HttpStatusCode.Created, begin.StatusCode);
        var id = (await begin.Content.ReadFromJsonAsync<TwoPC.Client.BeginTransactionResponse>())!.Id;

        using (var wrong = new HttpRequestMessage(HttpMethod.Post, $"transactions/{id}/commit"))
        {
            wrong.Headers.Authorization = new AuthenticationHeaderValue("ApiKey", "wrong-key-0123456789abcdefghijklmnopqrstuv");
            using var response = await http.SendAsync(wrong);
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        }

        // An authenticated client does not act in an anonymous caller's transaction ...
        using (var alpha = new HttpRequestMessage(HttpMethod.Post, $"transactions/{id}/rollback"))
        {
            alpha.Headers.Authorization = new AuthenticationHeaderValue("ApiKey", AuthServerFixture.AlphaKey);
            using var response = await http.SendAsync(alpha);
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        }

        // ... and the anonymous caller commits it.
        using var commit = await http.PostAsync($"transactions/{id}/commit", null);
        Assert.Equal(HttpStatusCode.OK, commit.StatusCode);
        await app.StopAsync();
    }

    [Theory]
    [InlineData("change-me")]
    [InlineData("short-key")]
    [InlineData("")]
    public async Task Item05_A_placeholder_short_or_empty_client_api_key_refuses_to_start(string key)
    {
        var error = await StartFailsAsync("--Urls=http://127.0.0.1:0", $"--Coordinator:Clients:alpha:ApiKey={key}");
        Assert.Contains("Coordinator:Clients:alpha:ApiKey", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Item05_Two_clients_sharing_one_api_key_refuse_to_start()
    {
        var error = await StartFailsAsync("--Urls=http://127.0.0.1:0", $"--Coordinator:Clients:alpha:ApiKey={AuthServerFixture.AlphaKey}",
            $"--Coordinator:Clients:beta:ApiKey={AuthServerFixture.AlphaKey}");
        Assert.Contains("Coordinator:Clients:beta:ApiKey", error, StringComparison.Ordinal);
    }

    private async Task<string> StartFailsAsync(params string[] args)
    {
        var error = await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            await using var app = Build(args);
            await app.StartAsync();
            await app.StopAsync();
        });
        return error is AggregateException aggregate ? string.Join(" | ", aggregate.Flatten().InnerExceptions.Select(e => e.Message)) : error.Message;
    }

    private WebApplication Build(params string[] args) => CoordinatorServer.BuildApp([
        "--TwoPC:NodeId=anon-test",
        $"--TwoPC:LogDirectory={_log.FullName}",
        "--Logging:LogLevel:Default=Warning",
        .. args,
    ]);
}
