using System.Net;
using System.Net.Http.Json;
using Dapper;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using TwoPC.Client;
using TwoPC.TestServers.Internal;

namespace TwoPC.Participants.Remote.Tests;

/// <summary>
/// Issue 15, item 13: a caller built with <c>AddTwoPCClient</c> and <c>AddTwoPCTransactionPropagation</c>, the real
/// coordinator server and a remote participant: a plain <see cref="HttpClient"/> call made inside <c>tx.Enter()</c>
/// joins the branch; outside a transaction no header is sent.
/// </summary>
[Collection(RemoteCollection.Name)]
public sealed class ClientIntegrationTests(RemoteFixture fixture) : IAsyncLifetime
{
    private const string Key = "client-service-key-0123456789-abcdefghijklmn";
    private readonly DirectoryInfo _log = Directory.CreateTempSubdirectory("twopc-client-log-");
    private WebApplication _coordinator = null!;
    private WebApplication _service = null!;
    private IHost _caller = null!;
    private string _connectionString = string.Empty;

    public async Task InitializeAsync()
    {
        var port = FreePort.OnLoopback();
        _coordinator = await OneParticipantCoordinator.StartAsync("client-test", "payments", port, Key, _log.FullName);
        var coordinatorUrl = new Uri(_coordinator.Urls.First());
        _connectionString = await fixture.Server.CreateDatabaseAsync();
        await OneParticipantService.CreateItemsTableAsync(_connectionString);
        _service = OneParticipantService.Build(_connectionString, "payments", port, coordinatorUrl, Key);
        _service.MapPost("/payments", async (Item item, RemoteBranch branch) =>
        {
            await branch.Connection.ExecuteAsync("INSERT INTO items (id) VALUES (@Id)", item, branch.Transaction);
            return Results.Ok();
        }).AsTwoPCBranch();
        _service.MapGet("/echo", (HttpRequest request) => request.Headers[TwoPCHeaders.TransactionId].ToString());
        await _service.StartAsync();

        // The caller: configuration as an application would have it; the coordinator's URL without a trailing slash.
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["TwoPCClient:BaseAddress"] = coordinatorUrl.AbsoluteUri.TrimEnd('/') });
        var paymentsUrl = new Uri($"http://127.0.0.1:{port}/");
        builder.Services.AddTwoPCClient(builder.Configuration.GetSection("TwoPCClient"));    // TwoPCClient:BaseAddress, TwoPCClient:ApiKey
        builder.Services.AddHttpClient("payments", c => c.BaseAddress = paymentsUrl).AddTwoPCTransactionPropagation();
        _caller = builder.Build();
        await _caller.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await _caller.StopAsync();
        _caller.Dispose();
        await _service.StopAsync();
        await _service.DisposeAsync();
        await _coordinator.StopAsync();
        await _coordinator.DisposeAsync();
        _log.Delete(recursive: true);
    }

    private HttpClient Payments => _caller.Services.GetRequiredService<IHttpClientFactory>().CreateClient("payments");

    [Fact]
    public async Task A_call_made_inside_the_transaction_joins_it_and_commits_with_it()
    {
        var twopc = _caller.Services.GetRequiredService<TwoPCClient>();
        var payments = _caller.Services.GetRequiredService<IHttpClientFactory>().CreateClient("payments");
        var payment = new Item("joined");

        // The README's caller ("As a standalone coordinator service"), verbatim.
        await using var tx = await twopc.BeginAsync(TimeSpan.FromSeconds(30));   // disposing without commit rolls back
        using (tx.Enter())                                                        // calls inside send TwoPC-Transaction-Id
        {
            using var paid = await payments.PostAsJsonAsync("payments", payment);
            paid.EnsureSuccessStatusCode();
        }

        var outcome = await tx.CommitAsync();                                      // Committed / RolledBack / Heuristic*

        Assert.Equal(OutcomeKindDto.Committed, outcome.Kind);
        Assert.Single(outcome.Branches);
        Assert.Equal(1, await CountAsync("joined"));
    }

    [Fact]
    public async Task A_call_rolled_back_with_its_transaction_leaves_nothing()
    {
        var client = _caller.Services.GetRequiredService<TwoPCClient>();
        await using var tx = await client.BeginAsync(TimeSpan.FromSeconds(30));
        using (tx.Enter())
        {
            using var response = await Payments.PostAsJsonAsync("payments", new Item("undone"));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        Assert.Equal(OutcomeKindDto.RolledBack, (await tx.RollbackAsync()).Kind);
        Assert.Equal(0, await CountAsync("undone"));
    }

    [Fact]
    public async Task Outside_a_transaction_no_header_is_sent()
    {
        Assert.Equal(string.Empty, await Payments.GetStringAsync("echo"));
        using var response = await Payments.PostAsJsonAsync("payments", new Item("alone"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode); // the branch endpoint needs the header

        var client = _caller.Services.GetRequiredService<TwoPCClient>();
        await using var tx = await client.BeginAsync();
        using (tx.Enter())
        {
            Assert.Equal(tx.Id, await Payments.GetStringAsync("echo"));
        }

        // The scope ended: nothing is sent any more.
        Assert.Equal(string.Empty, await Payments.GetStringAsync("echo"));
    }

    [Fact]
    public async Task An_explicit_header_wins_and_a_finished_transaction_is_not_sent()
    {
        var client = _caller.Services.GetRequiredService<TwoPCClient>();
        await using var tx = await client.BeginAsync();
        using (tx.Enter())
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "echo");
            request.Headers.Add(TwoPCHeaders.TransactionId, "explicit");
            using var response = await Payments.SendAsync(request);
            Assert.Equal("explicit", await response.Content.ReadAsStringAsync());

            await tx.RollbackAsync();
            Assert.Null(CoordinatorTransaction.Current);
            Assert.Equal(string.Empty, await Payments.GetStringAsync("echo"));
        }
    }

    [Fact]
    public async Task Scopes_nest_and_flow_into_tasks_but_not_back_out_of_an_async_method()
    {
        var client = _caller.Services.GetRequiredService<TwoPCClient>();
        await using var outer = await client.BeginAsync();
        await using var inner = await client.BeginAsync();
        using (outer.Enter())
        {
            using (inner.Enter())
            {
                Assert.Same(inner, CoordinatorTransaction.Current);
                Assert.Same(inner, await Task.Run(() => CoordinatorTransaction.Current));
            }

            Assert.Same(outer, CoordinatorTransaction.Current);
            await EnterWithoutDisposingAsync(inner);
            Assert.Same(outer, CoordinatorTransaction.Current);
        }

        Assert.Null(CoordinatorTransaction.Current);
    }

    [Fact]
    public async Task A_client_without_the_coordinators_address_fails_at_start()
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.AddTwoPCClient(o => o.ApiKey = "key");
        using var host = builder.Build();
        var error = await Assert.ThrowsAsync<Microsoft.Extensions.Options.OptionsValidationException>(() => host.StartAsync());
        Assert.Contains("TwoPCClient:BaseAddress is required", error.Message, StringComparison.Ordinal);
    }

    private static async Task EnterWithoutDisposingAsync(CoordinatorTransaction transaction)
    {
        await Task.Yield();
        _ = transaction.Enter();
        Assert.Same(transaction, CoordinatorTransaction.Current);
    }

    private async Task<long> CountAsync(string id)
    {
        await using var connection = new NpgsqlConnection(_connectionString);
        return await connection.ExecuteScalarAsync<long>("SELECT count(*) FROM items WHERE id = @id", new { id });
    }

    private sealed record Item(string Id);
}
