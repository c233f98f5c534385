// The checkout of the order/payment demo with the coordinator embedded in this process: the orders database, the
// payments database and a RabbitMQ publish commit atomically, with no coordinator service and no HTTP.
// Settings: ConnectionStrings:Orders, ConnectionStrings:Payments, RabbitMq:Uri, TwoPC:NodeId, TwoPC:LogDirectory,
// Checkout:{CustomerId, Sku, Quantity, Amount}. (The tables are the order and payment services'.)
// Prints "outcome <Kind> order <id> transaction <id> message <id>"; exit code 0 committed, 2 rolled back.
using System.Text.Json;
using Dapper;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using TwoPC.Hosting;
using TwoPC.Participants.PostgreSql;
using TwoPC.Participants.RabbitMq;
using TwoPC.Protocol;
using TwoPC.Samples;
using TwoPC.Transactions;

var builder = Host.CreateApplicationBuilder(args);
var config = builder.Configuration;

// The coordinator (its log in TwoPC:LogDirectory) and its three resource managers, each a keyed service under its name;
// they log through the host's logging and recovery runs when the host starts.
builder.Services.AddTwoPhaseCommit(config.GetSection("TwoPC"))
    .AddPostgres("orders-db", config.GetConnectionString("Orders")!)
    .AddPostgres("payments-db", config.GetConnectionString("Payments")!)
    .AddRabbitMq("events", new Uri(config["RabbitMq:Uri"]!));
using var host = builder.Build();
await host.StartAsync();

var coordinator = host.Services.GetRequiredService<TransactionCoordinator>();
var orders = host.Services.GetRequiredKeyedService<PostgresResourceManager>("orders-db");
var payments = host.Services.GetRequiredKeyedService<PostgresResourceManager>("payments-db");
var events = host.Services.GetRequiredKeyedService<RabbitMqResourceManager>("events");
var checkout = config.GetSection("Checkout");
var placed = new OrderPlaced("emb-" + Guid.NewGuid().ToString("N")[..12], checkout["CustomerId"]!, checkout["Sku"]!, checkout.GetValue<int>("Quantity"), checkout.GetValue<decimal>("Amount"));

// The checkout: one global transaction, three branches.
await using var tx = coordinator.Begin(TimeSpan.FromSeconds(30));
var order = await orders.EnlistAsync(tx);
var reserved = await order.Connection.ExecuteAsync(
    "UPDATE stock SET quantity = quantity - @Quantity WHERE sku = @Sku AND quantity >= @Quantity", placed, order.Transaction);
await order.Connection.ExecuteAsync(
    "INSERT INTO orders (order_id, customer_id, sku, quantity, amount) VALUES (@OrderId, @CustomerId, @Sku, @Quantity, @Amount)", placed, order.Transaction);
var payment = await payments.EnlistAsync(tx);
await payment.Connection.ExecuteAsync(
    "UPDATE wallets SET balance = balance - @Amount WHERE customer_id = @CustomerId; " +
    "INSERT INTO payments (order_id, customer_id, amount) VALUES (@OrderId, @CustomerId, @Amount)", placed, payment.Transaction);
var outbox = events.Enlist(tx);
outbox.Publish(new OutgoingMessage(OrderPlaced.Exchange, OrderPlaced.RoutingKey, JsonSerializer.SerializeToUtf8Bytes(placed, JsonSerializerOptions.Web), ContentType: "application/json", Type: OrderPlaced.Type));
var outcome = reserved == 0 ? await tx.RollbackAsync() : await tx.CommitAsync();  // insufficient funds: a No vote at prepare

var reason = outcome.Kind == OutcomeKind.Committed ? string.Empty : $" reason {(reserved == 0 ? "out of stock" : outcome.Reason)}";
Console.WriteLine($"outcome {outcome.Kind} order {placed.OrderId} transaction {tx.Id} message {RabbitMqResourceManager.MessageId(outbox.Xid, 0)}{reason}");
await host.StopAsync();
return outcome.Kind == OutcomeKind.Committed ? 0 : 2;
