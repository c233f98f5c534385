using Dapper;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Npgsql;
using TwoPC.Client;
using TwoPC.Participants.Remote;

namespace TwoPC.Samples.Orders;

/// <summary>
/// The order service. <c>POST /checkout {customerId, sku, quantity, amount}</c> runs a checkout as one global
/// transaction (see <see cref="CheckoutService"/>); <c>GET /orders/{orderId}</c> and <c>GET /stock</c> show the data.
/// Settings: <c>ConnectionStrings:Orders</c>, <c>Coordinator:Url</c>, <c>Coordinator:ApiKey</c> (the checkout's key as a client of
/// the coordinator; none: anonymous), <c>Payments:Url</c>, <c>TwoPC:Participant:*</c>
/// (<c>CoordinatorUrl</c> defaults to <c>Coordinator:Url</c>), <c>Orders:TransactionTimeout</c> (default 30 s), <c>Urls</c>.
/// </summary>
public static class OrdersService
{
    /// <summary>Creates the database and schema if needed (seeding the stock) and builds the application.</summary>
    public static async Task<WebApplication> BuildAsync(string[] args, CancellationToken cancellationToken = default)
    {
        var builder = WebApplication.CreateBuilder(args);
        var configuration = builder.Configuration;
        var connectionString = configuration.GetConnectionString("Orders") is { Length: > 0 } cs
            ? cs
            : throw new InvalidOperationException("ConnectionStrings:Orders is required.");
        var coordinatorUrl = BaseUrl(configuration["Coordinator:Url"] ?? configuration["TwoPC:Participant:CoordinatorUrl"], "Coordinator:Url");
        var paymentsUrl = BaseUrl(configuration["Payments:Url"], "Payments:Url");
        await SampleDatabase.EnsureCreatedAsync(connectionString, TimeSpan.FromSeconds(60), cancellationToken);
        var dataSource = NpgsqlDataSource.Create(connectionString);
        await OrdersDatabase.CreateSchemaAsync(dataSource, cancellationToken);

        builder.Services.AddSingleton(_ => dataSource);
        builder.Services.AddTwoPCRemoteParticipant(
            sp => sp.GetRequiredService<NpgsqlDataSource>(),
            configuration.GetSection("TwoPC:Participant"),
            o => o.CoordinatorUrl ??= coordinatorUrl);
        var coordinatorClient = builder.Services.AddHttpClient(CheckoutService.CoordinatorClient, c =>
        {
            c.BaseAddress = coordinatorUrl;
            c.Timeout = TimeSpan.FromSeconds(60);
        });

        // The checkout is a client of the coordinator's transaction API: its key is the coordinator's
        // Coordinator:Clients:orders:ApiKey. Without one it calls anonymously (a coordinator on loopback with AllowAnonymous).
        if (configuration["Coordinator:ApiKey"] is { Length: > 0 } apiKey)
        {
            coordinatorClient.AddTwoPCApiKey(apiKey);
        }
        builder.Services.AddHttpClient(CheckoutService.PaymentsClient, c =>
        {
            c.BaseAddress = paymentsUrl;
            c.Timeout = TimeSpan.FromSeconds(30);
        });
        builder.Services.AddSingleton<CheckoutService>();
        builder.Services.AddProblemDetails();

        var app = builder.Build();
        var log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger(Log.Category);
        app.Lifetime.ApplicationStarted.Register(() =>
        {
            log.Ready(coordinatorUrl, paymentsUrl);
            var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault();
            Console.WriteLine($"ready {address}");
        });

        app.UseExceptionHandler();
        app.MapTwoPCParticipant("/twopc");
        app.MapPost("/checkout", async (CheckoutRequest request, CheckoutService checkout, CancellationToken ct) =>
        {
            if (Validate(request) is { } error)
            {
                return Results.Problem(statusCode: StatusCodes.Status400BadRequest, title: "Invalid checkout", detail: error);
            }

            var result = await checkout.CheckoutAsync(request, ct);
            return Results.Json(result, statusCode: result.Outcome switch
            {
                CheckoutOutcomes.Committed => StatusCodes.Status200OK,
                CheckoutOutcomes.RolledBack => StatusCodes.Status409Conflict,
                CheckoutOutcomes.Unknown => StatusCodes.Status502BadGateway,
                CheckoutOutcomes.Unavailable => StatusCodes.Status503ServiceUnavailable,
                _ => StatusCodes.Status500InternalServerError,
            });
        });
        app.MapGet("/orders/{orderId}", async (string orderId, NpgsqlDataSource db, CancellationToken ct) =>
        {
            await using var connection = await db.OpenConnectionAsync(ct);
            var order = await connection.QuerySingleOrDefaultAsync<Order>(new CommandDefinition(
                "SELECT order_id AS OrderId, customer_id AS CustomerId, sku, quantity, amount, created_at AS CreatedAt FROM orders WHERE order_id = @orderId",
                new { orderId },
                cancellationToken: ct));
            return order is null ? Results.Problem(statusCode: StatusCodes.Status404NotFound, title: "Unknown order") : Results.Ok(order);
        });
        app.MapGet("/stock", async (NpgsqlDataSource db, CancellationToken ct) =>
        {
            await using var connection = await db.OpenConnectionAsync(ct);
            return Results.Ok(await connection.QueryAsync<StockItem>(new CommandDefinition("SELECT sku, quantity FROM stock ORDER BY sku", cancellationToken: ct)));
        });
        app.MapGet("/health", () => Results.Ok(new { status = "Healthy" }));
        return app;
    }

    private static Uri BaseUrl(string? value, string key)
    {
        if (!Uri.TryCreate(value, UriKind.Absolute, out var url) || (url.Scheme != Uri.UriSchemeHttp && url.Scheme != Uri.UriSchemeHttps))
        {
            throw new InvalidOperationException($"{key} is required: an absolute http(s) URL.");
        }

        return url.AbsoluteUri.EndsWith('/') ? url : new Uri(url.AbsoluteUri + "/");
    }

    private static string? Validate(CheckoutRequest request) =>
        string.IsNullOrWhiteSpace(request.CustomerId) || request.CustomerId.Length > 64 ? "customerId is required (at most 64 characters)"
        : string.IsNullOrWhiteSpace(request.Sku) || request.Sku.Length > 64 ? "sku is required (at most 64 characters)"
        : request.Quantity is < 1 or > 1000 ? "quantity must be 1-1000"
        : request.Amount is <= 0 or > 1_000_000 || decimal.Round(request.Amount, 2) != request.Amount ? "amount must be positive, at most 1,000,000, with at most 2 decimals"
        : null;
}

/// <summary>An order.</summary>
public sealed record Order(string OrderId, string CustomerId, string Sku, int Quantity, decimal Amount, DateTime CreatedAt);

/// <summary>A stock line.</summary>
public sealed record StockItem(string Sku, int Quantity);
