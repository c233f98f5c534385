#region xunit
// dotnet add package TwoPC.TestServers (plus TwoPC.Core and the participant packages your code uses)
using Npgsql;
using RabbitMQ.Client;
using TwoPC.Participants.PostgreSql;
using TwoPC.Participants.RabbitMq;
using TwoPC.Protocol;
using TwoPC.Testing;
using TwoPC.TestServers;
using TwoPC.Transactions;
using Xunit;

namespace MyService.Tests;

/// <summary>One PostgreSQL server and one RabbitMQ node, started once for every test class of the "servers" collection.</summary>
public sealed class ServersFixture : IAsyncLifetime
{
    public PostgresServer Postgres { get; private set; } = null!;

    public RabbitMqServer RabbitMq { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Postgres = await PostgresServer.StartAsync();   // max_prepared_transactions is set; data directory removed on dispose
        RabbitMq = await RabbitMqServer.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await RabbitMq.DisposeAsync();
        await Postgres.DisposeAsync();
    }
}

[CollectionDefinition("servers")]
public sealed class ServersCollection : ICollectionFixture<ServersFixture>;

[Collection("servers")]
public sealed class CheckoutTests(ServersFixture servers)
{
    [Fact]
    public async Task An_order_and_its_message_commit_together()
    {
        await using var orders = NpgsqlDataSource.Create(await servers.Postgres.CreateDatabaseAsync());  // a fresh database
        await using (var ddl = orders.CreateCommand("CREATE TABLE orders (id int PRIMARY KEY)"))
        {
            await ddl.ExecuteNonQueryAsync();
        }

        await using var broker = await new ConnectionFactory { Uri = servers.RabbitMq.AmqpUri }.CreateConnectionAsync();
        await using var channel = await broker.CreateChannelAsync();
        var queue = (await channel.QueueDeclareAsync()).QueueName;   // a private queue: the default exchange routes to it

        using var ordersDb = await PostgresResourceManager.CreateAsync("orders", orders);
        await using var events = await RabbitMqResourceManager.CreateAsync("events", new ConnectionFactory { Uri = servers.RabbitMq.AmqpUri });
        await using var coordinator = new TransactionCoordinator(
            new TransactionCoordinatorOptions { NodeId = "test-1" },
            new InMemoryTransactionLog(),                  // no log directory; inspect log.Decisions, or FailNextForce
            [ordersDb, events]);
        await coordinator.StartAsync();

        await using var tx = coordinator.Begin();
        var branch = await ordersDb.EnlistAsync(tx);
        await using (var insert = new NpgsqlCommand("INSERT INTO orders (id) VALUES (1)", branch.Connection, branch.Transaction))
        {
            await insert.ExecuteNonQueryAsync();
        }

        events.Enlist(tx).Publish(string.Empty, queue, "{\"id\":1}"u8.ToArray());
        var outcome = await tx.CommitAsync();

        Assert.Equal(OutcomeKind.Committed, outcome.Kind);
        await using var count = orders.CreateCommand("SELECT count(*) FROM orders");
        Assert.Equal(1L, await count.ExecuteScalarAsync());
        Assert.Equal(1u, await channel.MessageCountAsync(queue));
    }
}
#endregion
