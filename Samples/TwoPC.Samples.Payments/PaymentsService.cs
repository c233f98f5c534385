using Dapper;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Npgsql;
using TwoPC.Participants.Remote;

namespace TwoPC.Samples.Payments;

/// <summary>
/// The payment service. <c>POST /payments {orderId, customerId, amount}</c> debits the customer's wallet as a branch
/// of the caller's global transaction (header <c>TwoPC-Transaction-Id</c>): a 2xx answer means the branch is
/// prepared; insufficient funds is a No vote at PREPARE (a deferred constraint trigger), answered 409.
/// <c>GET /wallets</c>, <c>GET /wallets/{customerId}</c> show balances.
/// Settings: <c>ConnectionStrings:Payments</c>, <c>TwoPC:Participant:*</c>, <c>Urls</c>, <c>Demo:Chaos</c>.
/// </summary>
public static class PaymentsService
{
    /// <summary>Creates the database and schema if needed (seeding the wallets) and builds the application.</summary>
    public static async Task<WebApplication> BuildAsync(string[] args, CancellationToken cancellationToken = default)
    {
        var builder = WebApplication.CreateBuilder(args);
        var connectionString = builder.Configuration.GetConnectionString("Payments") is { Length: > 0 } cs
            ? cs
            : throw new InvalidOperationException("ConnectionStrings:Payments is required.");
        await SampleDatabase.EnsureCreatedAsync(connectionString, TimeSpan.FromSeconds(60), cancellationToken);
        var dataSource = NpgsqlDataSource.Create(connectionString);
        await PaymentsDatabase.CreateSchemaAsync(dataSource, cancellationToken);

        builder.Services.AddSingleton(_ => dataSource);
        builder.Services.AddTwoPCRemoteParticipant(sp => sp.GetRequiredService<NpgsqlDataSource>(), builder.Configuration.GetSection("TwoPC:Participant"));
        builder.Services.AddProblemDetails();
        var chaos = builder.Configuration.GetValue("Demo:Chaos", false);

        var app = builder.Build();
        var log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger(Log.Category);
        app.Lifetime.ApplicationStarted.Register(() =>
        {
            log.Ready(PaymentsDatabase.SeedWallets.Count, chaos ? "ON (POST /demo/hold-next-commit)" : "off");
            var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault();
            Console.WriteLine($"ready {address}");
        });

        app.UseExceptionHandler();
        if (chaos)
        {
            CommitHold.Map(app, log);
        }

        app.MapTwoPCParticipant("/twopc");
        app.MapPost("/payments", DebitAsync)
            .AddEndpointFilter(async (context, next) =>
            {
                // Outside AsTwoPCBranch's filter (filters run in the order they are added): sees the final answer,
                // including the 409 that a No vote at PREPARE turns the handler's 200 into.
                var result = await next(context);
                if (result is IStatusCodeHttpResult { StatusCode: { } status } && status is < 200 or > 299 && context.Arguments[0] is PaymentRequest request)
                {
                    var reason = result is ProblemHttpResult problem ? problem.ProblemDetails.Detail ?? problem.ProblemDetails.Title ?? string.Empty : string.Empty;
                    log.Refused(request.OrderId ?? "?", status, reason);
                }
                else if (context.Arguments[0] is PaymentRequest prepared)
                {
                    log.Prepared(prepared.OrderId ?? "?");
                }

                return result;
            })
            .AsTwoPCBranch();
        app.MapGet("/wallets", async (NpgsqlDataSource db, CancellationToken ct) =>
        {
            await using var connection = await db.OpenConnectionAsync(ct);
            return Results.Ok(await connection.QueryAsync<Wallet>(new CommandDefinition("SELECT customer_id AS CustomerId, balance FROM wallets ORDER BY customer_id", cancellationToken: ct)));
        });
        app.MapGet("/wallets/{customerId}", async (string customerId, NpgsqlDataSource db, CancellationToken ct) =>
        {
            await using var connection = await db.OpenConnectionAsync(ct);
            var wallet = await connection.QuerySingleOrDefaultAsync<Wallet>(new CommandDefinition("SELECT customer_id AS CustomerId, balance FROM wallets WHERE customer_id = @customerId", new { customerId }, cancellationToken: ct));
            return wallet is null ? Results.Problem(statusCode: StatusCodes.Status404NotFound, title: "Unknown customer") : Results.Ok(wallet);
        });
        app.MapGet("/health", () => Results.Ok(new { status = "Healthy" }));
        return app;

        async Task<IResult> DebitAsync(PaymentRequest request, RemoteBranch branch, CancellationToken ct)
        {
            if (Validate(request) is { } error)
            {
                return Results.Problem(statusCode: StatusCodes.Status400BadRequest, title: "Invalid payment", detail: error);
            }

            // The work of the branch, on its connection and transaction. An overdraft is not checked here: the
            // deferred trigger checks it at PREPARE TRANSACTION, which AsTwoPCBranch runs after a 2xx answer.
            var debited = await branch.Connection.ExecuteAsync(new CommandDefinition(
                "UPDATE wallets SET balance = balance - @Amount WHERE customer_id = @CustomerId", request, branch.Transaction, cancellationToken: ct));
            if (debited == 0)
            {
                return Results.Problem(statusCode: StatusCodes.Status404NotFound, title: "Unknown customer", detail: $"unknown customer {request.CustomerId}");
            }

            var recorded = await branch.Connection.ExecuteAsync(new CommandDefinition(
                "INSERT INTO payments (order_id, customer_id, amount) VALUES (@OrderId, @CustomerId, @Amount) ON CONFLICT (order_id) DO NOTHING",
                request,
                branch.Transaction,
                cancellationToken: ct));
            if (recorded == 0)
            {
                return Results.Problem(statusCode: StatusCodes.Status409Conflict, title: "Already paid", detail: $"order {request.OrderId} is already paid");
            }

            log.Debited(request.OrderId!, request.Amount, request.CustomerId!, branch.Xid);
            return Results.Ok(new PaymentAccepted(request.OrderId!, branch.Xid.ToString()));
        }
    }

    private static string? Validate(PaymentRequest request) =>
        string.IsNullOrWhiteSpace(request.OrderId) || request.OrderId.Length > 64 ? "orderId is required (at most 64 characters)"
        : string.IsNullOrWhiteSpace(request.CustomerId) || request.CustomerId.Length > 64 ? "customerId is required (at most 64 characters)"
        : request.Amount is <= 0 or > 1_000_000 || decimal.Round(request.Amount, 2) != request.Amount ? "amount must be positive, at most 1,000,000, with at most 2 decimals"
        : null;
}

/// <summary>Body of <c>POST /payments</c>.</summary>
public sealed record PaymentRequest(string? OrderId, string? CustomerId, decimal Amount);

/// <summary>A prepared payment: the branch's XID.</summary>
public sealed record PaymentAccepted(string OrderId, string Xid);

/// <summary>A wallet.</summary>
public sealed record Wallet(string CustomerId, decimal Balance);
