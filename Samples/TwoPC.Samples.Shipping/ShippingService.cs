using Dapper;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Npgsql;
using RabbitMQ.Client;
using TwoPC.Participants.RabbitMq;

namespace TwoPC.Samples.Shipping;

/// <summary>
/// The shipping service: declares exchange <c>orders</c> (topic) and the quorum queue <c>shipping.order-placed</c>
/// bound with <c>order.placed</c>, and consumes it with a typed consumer (<c>AddTwoPCConsumer</c>): each
/// <see cref="OrderPlaced"/> inserts one <c>shipments</c> row (<see cref="RecordShipment"/>) in the same PostgreSQL
/// transaction as its inbox row, and is acknowledged only after that commit — a redelivered message (same MessageId)
/// changes nothing. The broker may be down at start: the consumer's connection is retried, and consuming begins once
/// it answers (prints <c>ready {address}</c>).
/// <c>GET /shipments/{orderId}</c>, <c>GET /health</c> (503 until consuming). Settings: <c>ConnectionStrings:Shipping</c>, <c>RabbitMq:Uri</c>, <c>Urls</c>.
/// </summary>
public static class ShippingService
{
    /// <summary>The queue consumed.</summary>
    public const string Queue = "shipping.order-placed";

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
        var status = new ShippingStatus();
        Action? ready = null;
        builder.Services.AddTwoPCConsumer<OrderPlaced, RecordShipment>(Queue, consumer =>
        {
            consumer.ConnectionFactory = new ConnectionFactory { Uri = brokerUri, ClientProvidedName = "shipping" };
            consumer.Exchange = OrderPlaced.Exchange;
            consumer.RoutingKeys.Add(OrderPlaced.RoutingKey);
            consumer.Inbox.Concurrency = 4;
            consumer.Inbox.OnConsuming = () =>
            {
                if (status.MarkConsuming())
                {
                    ready?.Invoke();
                }
            };
        });

        var app = builder.Build();
        // Ready means consuming: a message published from now on reaches the queue and is handled.
        ready = () => app.Lifetime.ApplicationStarted.Register(() =>
        {
            app.Services.GetRequiredService<ILoggerFactory>().CreateLogger(Log.Category).Ready(Queue, OrderPlaced.Exchange, OrderPlaced.RoutingKey);
            var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault();
            Console.WriteLine($"ready {address}");
        });
        app.MapGet("/shipments/{orderId}", async (string orderId, NpgsqlDataSource db, CancellationToken ct) =>
        {
            await using var connection = await db.OpenConnectionAsync(ct);
            var shipment = await connection.QuerySingleOrDefaultAsync<Shipment>(new CommandDefinition(
                "SELECT order_id AS OrderId, customer_id AS CustomerId, sku, quantity, message_id AS MessageId, created_at AS CreatedAt FROM shipments WHERE order_id = @orderId",
                new { orderId },
                cancellationToken: ct));
            return shipment is null ? Results.Problem(statusCode: StatusCodes.Status404NotFound, title: "No shipment for this order") : Results.Ok(shipment);
        });
        app.MapGet("/health", () => status.IsConsuming
            ? Results.Ok(new { status = "Healthy" })
            : Results.Problem(statusCode: StatusCodes.Status503ServiceUnavailable, title: "Not consuming yet", detail: $"Waiting for RabbitMQ at {brokerUri.Host}; the connection is retried."));
        return app;
    }
}

/// <summary>A recorded shipment.</summary>
public sealed record Shipment(string OrderId, string CustomerId, string Sku, int Quantity, string MessageId, DateTime CreatedAt);
