#region embedded
// QuickStart.cs in a `dotnet new console` app, with the packages TwoPC.Core, TwoPC.Participants.PostgreSql,
// TwoPC.Participants.RabbitMq and Dapper; Program.cs:
//   Console.WriteLine(await Orders.QuickStart.PlaceOrderAsync("Host=localhost;Database=orders;Username=postgres",
//       "Host=localhost;Database=stock;Username=postgres", "amqp://guest:guest@localhost/", "twopc-log"));
using System.Text.Json;
using Dapper;
using Npgsql;
using RabbitMQ.Client;
using TwoPC.Participants.PostgreSql;
using TwoPC.Participants.RabbitMq;
using TwoPC.Protocol;
using TwoPC.Wal;

namespace Orders;

public static class QuickStart
{
    /// <summary>One order: a row in the orders database, a stock decrement in the stock database and an
    /// "order.placed" message on the "orders" exchange — all three, or none.</summary>
    public static async Task<TransactionOutcome> PlaceOrderAsync(
        string ordersConnectionString, string stockConnectionString, string amqpUri, string logDirectory)
    {
        // Both servers need max_prepared_transactions > 0 (postgresql.conf; it defaults to 0).
        await using var ordersSource = NpgsqlDataSource.Create(ordersConnectionString);
        await using var stockSource = NpgsqlDataSource.Create(stockConnectionString);
        await using (var connection = await ordersSource.OpenConnectionAsync())
        {
            await connection.ExecuteAsync(
                "CREATE TABLE IF NOT EXISTS orders (id uuid PRIMARY KEY, sku text NOT NULL, quantity int NOT NULL)");
        }

        await using (var connection = await stockSource.OpenConnectionAsync())
        {
            await connection.ExecuteAsync(
                "CREATE TABLE IF NOT EXISTS stock (sku text PRIMARY KEY, available int NOT NULL CHECK (available >= 0));" +
                "INSERT INTO stock (sku, available) VALUES ('mug', 10) ON CONFLICT (sku) DO NOTHING");
        }

        // The exchange, and a queue bound to it: a message to a missing exchange rolls the transaction back, and
        // one no queue receives is parked (twopc.parked) and reported as HeuristicHazard.
        var broker = new ConnectionFactory { Uri = new Uri(amqpUri) };
        await using (var connection = await broker.CreateConnectionAsync())
        await using (var channel = await connection.CreateChannelAsync())
        {
            await channel.ExchangeDeclareAsync("orders", ExchangeType.Topic, durable: true);
            await channel.QueueDeclareAsync("order-events", durable: true, exclusive: false, autoDelete: false);
            await channel.QueueBindAsync("order-events", "orders", "order.placed");
        }

        using var ordersDb = await PostgresResourceManager.CreateAsync("orders", ordersSource);
        using var stockDb = await PostgresResourceManager.CreateAsync("stock", stockSource);
        await using var events = await RabbitMqResourceManager.CreateAsync("events", broker);
        await using var coordinator = new TransactionCoordinator(
            new TransactionCoordinatorOptions { NodeId = "orders-1" },
            new FileTransactionLog(new FileTransactionLogOptions { Directory = logDirectory }),
            [ordersDb, stockDb, events]);
        await coordinator.StartAsync();                              // reads the log and recovers first

        var order = new { Id = Guid.NewGuid(), Sku = "mug", Quantity = 1 };
        await using var tx = coordinator.Begin(TimeSpan.FromSeconds(30));
        var orders = await ordersDb.EnlistAsync(tx);                 // an open connection + transaction
        await orders.Connection.ExecuteAsync(
            "INSERT INTO orders (id, sku, quantity) VALUES (@Id, @Sku, @Quantity)", order, orders.Transaction);
        var stock = await stockDb.EnlistAsync(tx);
        await stock.Connection.ExecuteAsync(       // below zero it throws: disposing tx uncommitted rolls back all
            "UPDATE stock SET available = available - @Quantity WHERE sku = @Sku", order, stock.Transaction);
        events.Enlist(tx).Publish("orders", "order.placed", JsonSerializer.SerializeToUtf8Bytes(order));
        return await tx.CommitAsync();       // Committed, RolledBack (with the reason) or Heuristic*
    }
}
#endregion
