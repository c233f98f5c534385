using System.Net;
using System.Net.Http.Json;
using System.Text;
using Microsoft.AspNetCore.Builder;
using RabbitMQ.Client;
using TwoPC.Client;
using TwoPC.Coordinator.Server;
using TwoPC.TestServers;

namespace TwoPC.Participants.Remote.Tests;

/// <summary>
/// Messages staged through the standalone coordinator (<c>POST /transactions/{id}/messages</c>): a real
/// coordinator on loopback hosting the RabbitMQ participant against a private RabbitMQ node.
/// </summary>
public sealed class CoordinatorMessagingTests(MessagingFixture fixture) : IClassFixture<MessagingFixture>, IAsyncLifetime
{
    private const string Exchange = MessagingFixture.Exchange;
    private TwoPCClient _client = null!;

    public async Task InitializeAsync()
    {
        _client = fixture.Client;
        await DrainAsync(); // the queue starts empty for every test
    }

    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task Messages_are_published_when_the_transaction_commits_under_stable_ids()
    {
        await using var tx = await _client.BeginAsync();
        var first = await tx.PublishAsync(Exchange, "order.placed", new { orderId = "o-1", amount = 12.5m }, type: "OrderPlaced");
        var second = await tx.PublishAsync(Exchange, "order.placed", new { orderId = "o-2", amount = 3m }, type: "OrderPlaced");
        Assert.Empty(await DrainAsync()); // staged, not published

        var outcome = await tx.CommitAsync();

        Assert.Equal(OutcomeKindDto.Committed, outcome.Kind);
        var messages = await DrainAsync(expected: 2);
        Assert.Equal([first.MessageId, second.MessageId], messages.Select(m => m.MessageId));
        Assert.Equal(first.Xid + ".0", first.MessageId);
        Assert.Contains("\"orderId\":\"o-1\"", messages[0].Body, StringComparison.Ordinal);
        Assert.All(messages, m => Assert.Equal("OrderPlaced", m.Type));
    }

    [Fact]
    public async Task Messages_of_a_rolled_back_transaction_are_never_published()
    {
        await using var tx = await _client.BeginAsync();
        await tx.PublishAsync(Exchange, "order.placed", new { orderId = "o-3" });

        var outcome = await tx.RollbackAsync();

        Assert.Equal(OutcomeKindDto.RolledBack, outcome.Kind);
        await Task.Delay(200);
        Assert.Empty(await DrainAsync());
    }

    [Fact]
    public async Task Bad_publish_requests_get_problem_details_and_stage_nothing()
    {
        await using var tx = await _client.BeginAsync();
        var path = $"transactions/{tx.Id}/messages";

        using var noExchange = await _client.Http.PostAsJsonAsync(path, new { routingKey = "x", body = new { a = 1 } });
        using var noBody = await _client.Http.PostAsJsonAsync(path, new { exchange = Exchange, routingKey = "x" });
        using var reservedHeader = await _client.Http.PostAsJsonAsync(path, new { exchange = Exchange, body = 1, headers = new Dictionary<string, string> { ["x-twopc-parked-reason"] = "x" } });
        using var notJson = await _client.Http.PostAsync(path, new StringContent("{", Encoding.UTF8, "application/json"));
        using var hostileId = await _client.Http.PostAsJsonAsync("transactions/'%3B%20DROP/messages", new { exchange = Exchange, body = 1 });
        using var unknown = await _client.Http.PostAsJsonAsync("transactions/messaging-test.ffff.1/messages", new { exchange = Exchange, body = 1 });

        Assert.Equal(HttpStatusCode.BadRequest, noExchange.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, noBody.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, reservedHeader.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, notJson.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, hostileId.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.Equal("application/problem+json", noExchange.Content.Headers.ContentType?.MediaType);

        Assert.Equal(OutcomeKindDto.Committed, (await tx.CommitAsync()).Kind);
        Assert.Empty(await DrainAsync());

        var late = await Assert.ThrowsAsync<TwoPCApiException>(() => tx.PublishAsync(Exchange, "order.placed", new { orderId = "late" }));
        Assert.Equal(HttpStatusCode.Conflict, late.StatusCode);
    }

    /// <summary>
    /// Issue 10 item 4: AMQP short strings are limited in bytes, not characters. 200 × "é" (plus one letter) is
    /// 201 characters but 401 bytes; it used to pass, then block the commit forever.
    /// </summary>
    [Fact]
    public async Task Item04_short_strings_over_255_bytes_of_UTF8_are_refused_and_the_transaction_still_commits()
    {
        await using var tx = await _client.BeginAsync();
        var path = $"transactions/{tx.Id}/messages";

        using var routingKey = await _client.Http.PostAsJsonAsync(path, new { exchange = Exchange, routingKey = "k" + new string('é', 200), body = 1 });
        using var type = await _client.Http.PostAsJsonAsync(path, new { exchange = Exchange, routingKey = "x", type = new string('€', 86), body = 1 });
        using var header = await _client.Http.PostAsJsonAsync(path, new { exchange = Exchange, routingKey = "x", body = 1, headers = new Dictionary<string, string> { [new string('ü', 128)] = "v" } });
        using var exchange = await _client.Http.PostAsJsonAsync(path, new { exchange = new string('ß', 128), routingKey = "x", body = 1 });

        foreach (var (what, response) in new[] { ("routing key", routingKey), ("type", type), ("header name", header), ("exchange", exchange) })
        {
            Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{what}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
            Assert.Contains("bytes", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        await tx.PublishAsync(Exchange, "order.placed", new { orderId = "o-ok" });
        var outcome = await tx.CommitAsync().WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(OutcomeKindDto.Committed, outcome.Kind);
        Assert.Single(await DrainAsync(expected: 1));
    }

    private async Task<List<(string? MessageId, string Body, string? Type)>> DrainAsync(int expected = 0)
    {
        var messages = new List<(string? MessageId, string Body, string? Type)>();
        await using var channel = await fixture.Connection.CreateChannelAsync();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        do
        {
            while (await channel.BasicGetAsync(MessagingFixture.Queue, autoAck: true) is { } result)
            {
                messages.Add((result.BasicProperties.MessageId, Encoding.UTF8.GetString(result.Body.Span), result.BasicProperties.Type));
            }

            if (messages.Count >= expected)
            {
                break;
            }

            await Task.Delay(50);
        }
        while (clock.Elapsed < TimeSpan.FromSeconds(20));

        return messages;
    }
}

/// <summary>One private RabbitMQ node and one coordinator hosting the RabbitMQ participant, shared by the class.</summary>
public sealed class MessagingFixture : IAsyncLifetime
{
    public const string Exchange = "orders";
    public const string Queue = "orders.audit";
    private readonly DirectoryInfo _log = Directory.CreateTempSubdirectory("twopc-messaging-log-");
    private RabbitMqServer _rabbit = null!;
    private WebApplication _coordinator = null!;

    public TwoPCClient Client { get; private set; } = null!;

    public IConnection Connection { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        _rabbit = await RabbitMqServer.StartAsync();
        Connection = await new ConnectionFactory { Uri = _rabbit.AmqpUri }.CreateConnectionAsync();
        await using (var channel = await Connection.CreateChannelAsync())
        {
            await channel.ExchangeDeclareAsync(Exchange, ExchangeType.Topic, durable: true);
            await channel.QueueDeclareAsync(Queue, durable: true, exclusive: false, autoDelete: false);
            await channel.QueueBindAsync(Queue, Exchange, "#");
        }

        _coordinator = CoordinatorServer.BuildApp([
            "--Urls=http://127.0.0.1:0",
            "--TwoPC:NodeId=messaging-test",
            "--Coordinator:Authentication:AllowAnonymous=true", // anonymous callers on loopback (issue 12: explicit)
            $"--TwoPC:LogDirectory={_log.FullName}",
            $"--Coordinator:RabbitMq:Uri={_rabbit.AmqpUri}",
            "--Logging:LogLevel:Default=Warning",
        ]);
        await _coordinator.StartAsync();
        Client = new TwoPCClient(new HttpClient { BaseAddress = new Uri(_coordinator.Urls.First() + "/") });
    }

    public async Task DisposeAsync()
    {
        Client.Http.Dispose();
        await _coordinator.StopAsync();
        await _coordinator.DisposeAsync();
        await Connection.DisposeAsync();
        await _rabbit.DisposeAsync();
        _log.Delete(recursive: true);
    }
}
