using System.Net;
using System.Net.Http.Json;
using Dapper;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Npgsql;
using TwoPC.Client;
using TwoPC.Coordinator.Server;
using TwoPC.Participants.Remote;
using TwoPC.TestServers.Internal;

namespace TwoPC.Participants.Remote.Tests;

/// <summary>
/// Issue 15 item 9(c): a branch whose handler failed votes No with the handler's error (its exception, or its status and
/// what it answered), so the transaction's outcome says why — not only "the request ended without preparing".
/// </summary>
[Collection(RemoteCollection.Name)]
public sealed class Item09RollbackReasonTests(RemoteFixture fixture) : IAsyncLifetime
{
    private const string Key = "reason-service-key-0123456789-abcdefghijklmn";
    private readonly DirectoryInfo _log = Directory.CreateTempSubdirectory("twopc-reason-log-");
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(60) };
    private WebApplication _coordinator = null!;
    private WebApplication _service = null!;
    private string _connectionString = string.Empty;
    private Uri _serviceUrl = null!;
    private TwoPCClient _client = null!;

    public async Task InitializeAsync()
    {
        var port = FreePort.OnLoopback();
        _coordinator = await OneParticipantCoordinator.StartAsync("reason-test", "reason-service", port, Key, _log.FullName);
        var coordinatorUrl = new Uri(_coordinator.Urls.First() + "/");
        _client = new TwoPCClient(new HttpClient { BaseAddress = coordinatorUrl });
        _connectionString = await fixture.Server.CreateDatabaseAsync();
        await OneParticipantService.CreateItemsTableAsync(_connectionString);
        _service = OneParticipantService.Build(_connectionString, "reason-service", port, coordinatorUrl, Key, o => o.RecoveryInterval = TimeSpan.FromHours(1));
        _service.MapPost("/throw", async (Item item, RemoteBranch branch) =>
        {
            await branch.Connection.ExecuteAsync("INSERT INTO items (id) VALUES (@Id)", item, branch.Transaction);
            throw new InvalidOperationException("stock reservation failed for " + item.Id);
        }).AsTwoPCBranch();
        _service.MapPost("/throw-long", async (Item item, RemoteBranch branch) =>
        {
            await branch.Connection.ExecuteAsync("INSERT INTO items (id) VALUES (@Id)", item, branch.Transaction);
            throw new InvalidOperationException(new string('x', 5000));
        }).AsTwoPCBranch();
        _service.MapPost("/problem", async (Item item, RemoteBranch branch) =>
        {
            await branch.Connection.ExecuteAsync("INSERT INTO items (id) VALUES (@Id)", item, branch.Transaction);
            return Results.Problem(statusCode: StatusCodes.Status409Conflict, title: "Insufficient funds", detail: "wallet of frank holds 3.00, 12.50 needed");
        }).AsTwoPCBranch();
        _service.MapPost("/unprocessable", async (Item item, RemoteBranch branch) =>
        {
            await branch.Connection.ExecuteAsync("INSERT INTO items (id) VALUES (@Id)", item, branch.Transaction);
            return Results.UnprocessableEntity(new { error = "sku unknown" });
        }).AsTwoPCBranch();
        await _service.StartAsync();
        _serviceUrl = new Uri(_service.Urls.First() + "/");
    }

    public async Task DisposeAsync()
    {
        await _service.StopAsync();
        await _service.DisposeAsync();
        await _coordinator.StopAsync();
        await _coordinator.DisposeAsync();
        _client.Http.Dispose();
        _http.Dispose();
        _log.Delete(recursive: true);
    }

    [Fact]
    public async Task Item09_a_handler_that_throws_gives_its_exception_as_the_rollback_reason()
    {
        var outcome = await CommitAfterAsync("throw", "r-1", HttpStatusCode.InternalServerError);

        Assert.Equal(OutcomeKindDto.RolledBack, outcome.Kind);
        Assert.Contains("InvalidOperationException: stock reservation failed for r-1", outcome.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Item09_a_handler_that_answers_a_problem_gives_its_status_and_detail_as_the_rollback_reason()
    {
        var outcome = await CommitAfterAsync("problem", "r-2", HttpStatusCode.Conflict);

        Assert.Equal(OutcomeKindDto.RolledBack, outcome.Kind);
        Assert.Contains("answered 409: wallet of frank holds 3.00, 12.50 needed", outcome.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Item09_a_handler_that_answers_an_error_value_gives_it_as_the_rollback_reason()
    {
        var outcome = await CommitAfterAsync("unprocessable", "r-3", HttpStatusCode.UnprocessableEntity);

        Assert.Equal(OutcomeKindDto.RolledBack, outcome.Kind);
        Assert.Contains("answered 422: {\"error\":\"sku unknown\"}", outcome.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Item09_a_long_handler_error_is_cut_by_the_reason_rule()
    {
        var outcome = await CommitAfterAsync("throw-long", "r-4", HttpStatusCode.InternalServerError);

        Assert.Equal(OutcomeKindDto.RolledBack, outcome.Kind);
        Assert.Contains("InvalidOperationException: xxxx", outcome.Reason, StringComparison.Ordinal);
        Assert.Contains("(truncated,", outcome.Reason, StringComparison.Ordinal);
        Assert.True(outcome.Reason!.Length < 1200, $"reason of {outcome.Reason.Length} characters");
    }

    // The caller commits although the branch's request failed: the coordinator's prepare call hears the branch's No.
    private async Task<OutcomeDto> CommitAfterAsync(string path, string id, HttpStatusCode expected)
    {
        await using var tx = await _client.BeginAsync();
        using (var request = new HttpRequestMessage(HttpMethod.Post, new Uri(_serviceUrl, path)) { Content = JsonContent.Create(new Item(id)) })
        {
            request.Headers.TryAddWithoutValidation(TwoPCHeaders.TransactionId, tx.Id);
            using var response = await _http.SendAsync(request);
            Assert.Equal(expected, response.StatusCode);
        }

        var outcome = await tx.CommitAsync();
        await using var connection = new NpgsqlConnection(_connectionString);
        Assert.Equal(0, await connection.ExecuteScalarAsync<long>("SELECT count(*) FROM items WHERE id = @id", new { id }));
        return outcome;
    }

    public sealed record Item(string Id);
}
