using System.Text.Json;
using Dapper;
using Npgsql;
using Orders;
using RabbitMQ.Client;
using TwoPC.Transactions;
using TwoPC.TestServers;

namespace TwoPC.Samples.Readme.Tests;

/// <summary>The README's embedded quick start (QuickStart.cs#embedded), run as pasted against real servers.</summary>
public sealed class QuickStartTests : IAsyncLifetime
{
    private readonly string _logDirectory = Path.Combine(Path.GetTempPath(), "twopc-quickstart-" + Guid.NewGuid().ToString("N"));
    private PostgresServer? _postgres;
    private RabbitMqServer? _rabbit;

    public async Task InitializeAsync()
    {
        _postgres = await PostgresServer.StartAsync(new PostgresServerOptions { Fsync = false });
        _rabbit = await RabbitMqServer.StartAsync();
    }

    public async Task DisposeAsync()
    {
        if (_rabbit is not null)
        {
            await _rabbit.DisposeAsync();
        }

        if (_postgres is not null)
        {
            await _postgres.DisposeAsync();
        }

        if (Directory.Exists(_logDirectory))
        {
            Directory.Delete(_logDirectory, recursive: true);
        }
    }

    [Fact]
    public async Task The_embedded_quick_start_commits_an_order_in_two_databases_and_publishes_its_message()
    {
        var orders = await _postgres!.CreateDatabaseAsync();
        var stock = await _postgres.CreateDatabaseAsync();

        var first = await QuickStart.PlaceOrderAsync(orders, stock, _rabbit!.AmqpUri.ToString(), _logDirectory);
        // Pasted twice (tables and exchange exist, the log is reopened): it still works.
        var second = await QuickStart.PlaceOrderAsync(orders, stock, _rabbit.AmqpUri.ToString(), _logDirectory);

        Assert.Equal(OutcomeKind.Committed, first.Kind);
        Assert.Equal(OutcomeKind.Committed, second.Kind);
        Assert.Equal(3, first.Branches.Count);

        await using var ordersDb = new NpgsqlConnection(orders);
        var rows = (await ordersDb.QueryAsync<(Guid Id, string Sku, int Quantity)>("SELECT id, sku, quantity FROM orders")).ToArray();
        Assert.Equal(2, rows.Length);
        Assert.All(rows, r => Assert.Equal(("mug", 1), (r.Sku, r.Quantity)));

        await using var stockDb = new NpgsqlConnection(stock);
        Assert.Equal(8, await stockDb.ExecuteScalarAsync<int>("SELECT available FROM stock WHERE sku = 'mug'"));
        Assert.Equal(0L, await stockDb.ExecuteScalarAsync<long>("SELECT count(*) FROM pg_prepared_xacts"));

        // The messages were confirmed by the broker before CommitAsync returned: one per order in the queue the quick
        // start bound, each carrying its order's id.
        await using var connection = await new ConnectionFactory { Uri = _rabbit.AmqpUri }.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();
        var published = new List<Guid>();
        while (await channel.BasicGetAsync("order-events", autoAck: true) is { } message)
        {
            published.Add(JsonDocument.Parse(message.Body).RootElement.GetProperty("Id").GetGuid());
        }

        Assert.Equal(rows.Select(r => r.Id).Order(), published.Order());
    }
}
