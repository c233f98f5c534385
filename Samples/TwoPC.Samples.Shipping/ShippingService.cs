using System.Text.Json;
using Dapper;
using Microsoft.AspNetCore.Hosting.Server;
using Npgsql;
using TwoPC.Participants.RabbitMq;

namespace TwoPC.Samples.Shipping;

/// <summary>
/// The shipping service: declares exchange <c>orders</c> (topic) and the quorum queue <c>shipping.order-placed</c>
/// bound with <c>order.placed</c>, and consumes it with <see cref="InboxConsumer"/>: each <see cref="OrderPlaced"/>
/// inserts one <c>shipments</c> row in the same PostgreSQL transaction as its inbox row, and is acknowledged only
/// after that commit — a redelivered message (same MessageId) changes nothing.
/// The broker may be down at start: consuming begins once it answers (<see cref="ShippingConsumer"/>).
/// <c>GET /shipments/{orderId}</c>, <c>GET /health</c> (503 until consuming). Settings: <c>ConnectionStrings:Shipping</c>, <c>RabbitMq:Uri</c>, <c>Urls</c>.
/// </summary>
public static class ShippingService
{
    /// <summary>The queue consumed.</summary>
    public const string Queue = "shipping.order-placed";

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <summary>Creates the database and schema if needed and builds the application (consuming starts with the host).</summary>
    public static async Task<WebApplication> BuildAsync(string[] args, CancellationToken cancellationToken = default)
    {
        var builder = WebApplication.CreateBuilder(args);
        var connectionString = builder.Configuration.GetConnectionString("Shipping") is { Length: > 0 } cs
            ? cs
            : throw new InvalidOperationException("ConnectionStrings:Shipping is required.");
        var brokerUri = Uri.TryCreate(builder.Configuration["RabbitMq:Uri"], UriKind.Absolute, out var uri)
            ? uri
            : throw new InvalidOperationException("RabbitMq:Uri is required (amqp://user:password@host:port/vhost).");
        await SampleDatabase.EnsureCreatedAsync(connectionString, TimeSpan.FromSeconds(60), cancellationToken);
        var dataSource = NpgsqlDataSource.Create(connectionString);
        await using (var create = dataSource.CreateCommand("""
            SELECT pg_advisory_xact_lock(7215003);
            CREATE TABLE IF NOT EXISTS shipments (
                order_id text PRIMARY KEY,
                customer_id text NOT NULL,
                sku text NOT NULL,
                quantity int NOT NULL,
                message_id text NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now());
            """))
        {
            await create.ExecuteNonQueryAsync(cancellationToken);
        }

        builder.Services.AddSingleton(_ => dataSource);
        // Consuming starts in the background: a broker that is down now is retried, the service runs meanwhile.
        builder.Services.AddSingleton(sp =>
        {
            var log = sp.GetRequiredService<ILoggerFactory>().CreateLogger(Log.Category);
            return new ShippingConsumer(
                brokerUri,
                sp.GetRequiredService<NpgsqlDataSource>(),
                (message, db, transaction, token) => RecordShipmentAsync(message, db, transaction, log, token),
                sp.GetRequiredService<IServer>(),
                sp.GetRequiredService<IHostApplicationLifetime>(),
                sp.GetRequiredService<ILoggerFactory>());
        });
        builder.Services.AddHostedService(sp => sp.GetRequiredService<ShippingConsumer>());

        var app = builder.Build();
        app.MapGet("/shipments/{orderId}", async (string orderId, NpgsqlDataSource db, CancellationToken ct) =>
        {
            await using var connection = await db.OpenConnectionAsync(ct);
            var shipment = await connection.QuerySingleOrDefaultAsync<Shipment>(new CommandDefinition(
                "SELECT order_id AS OrderId, customer_id AS CustomerId, sku, quantity, message_id AS MessageId, created_at AS CreatedAt FROM shipments WHERE order_id = @orderId",
                new { orderId },
                cancellationToken: ct));
            return shipment is null ? Results.Problem(statusCode: StatusCodes.Status404NotFound, title: "No shipment for this order") : Results.Ok(shipment);
        });
        app.MapGet("/health", (ShippingConsumer consumer) => consumer.IsConsuming
            ? Results.Ok(new { status = "Healthy" })
            : Results.Problem(statusCode: StatusCodes.Status503ServiceUnavailable, title: "Not consuming yet", detail: $"Waiting for RabbitMQ at {consumer.BrokerHost}; the connection is retried."));
        return app;
    }

    // Runs inside the inbox transaction, whose first statement claimed the message id: a plain INSERT is enough.
    // (A second message for the same order under another id would fail on the primary key and end up dead-lettered.)
    private static async Task RecordShipmentAsync(InboxMessage message, NpgsqlConnection connection, NpgsqlTransaction transaction, ILogger log, CancellationToken cancellationToken)
    {
        var placed = JsonSerializer.Deserialize<OrderPlaced>(message.Body.Span, Json)
            ?? throw new InvalidDataException($"Message {message.MessageId} is not an OrderPlaced event.");
        await connection.ExecuteAsync(new CommandDefinition(
            "INSERT INTO shipments (order_id, customer_id, sku, quantity, message_id) VALUES (@OrderId, @CustomerId, @Sku, @Quantity, @MessageId)",
            new { placed.OrderId, placed.CustomerId, placed.Sku, placed.Quantity, message.MessageId },
            transaction,
            cancellationToken: cancellationToken));
        log.Shipped(placed.OrderId, placed.Quantity, placed.Sku, placed.CustomerId, message.MessageId);
    }
}

/// <summary>A recorded shipment.</summary>
public sealed record Shipment(string OrderId, string CustomerId, string Sku, int Quantity, string MessageId, DateTime CreatedAt);
