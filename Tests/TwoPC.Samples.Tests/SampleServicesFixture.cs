using System.Globalization;
using Dapper;
using Microsoft.AspNetCore.Builder;
using Npgsql;
using TwoPC.Client;
using TwoPC.Coordinator.Server;
using TwoPC.Samples.Orders;
using TwoPC.Samples.Payments;
using TwoPC.TestServers;
using TwoPC.TestServers.Internal;

namespace TwoPC.Samples.Tests;

/// <summary>
/// The coordinator, the payment service and the order service hosted in this process on free loopback ports, over
/// one private PostgreSQL server. No RabbitMQ: the coordinator has no messaging configured, so a checkout that gets
/// as far as staging its event is refused there (and must roll back everything).
/// </summary>
public sealed class SampleServicesFixture : IAsyncLifetime
{
    private readonly DirectoryInfo _work = Directory.CreateTempSubdirectory("twopc-samples-");
    private readonly List<WebApplication> _apps = [];
    private PostgresServer? _postgres;

    /// <summary>The order service's API key at the coordinator (its checkouts are that client's transactions).</summary>
    public const string OrdersApiKey = "orders-client-key-of-the-sample-tests-0123456789";

    public Uri CoordinatorUrl { get; private set; } = null!;

    public Uri PaymentsUrl { get; private set; } = null!;

    public Uri OrdersUrl { get; private set; } = null!;

    public TwoPCClient Coordinator { get; private set; } = null!;

    public HttpClient Http { get; } = new() { Timeout = TimeSpan.FromSeconds(60) };

    public NpgsqlDataSource OrdersDb { get; private set; } = null!;

    public NpgsqlDataSource PaymentsDb { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        _postgres = await PostgresServer.StartAsync(new PostgresServerOptions { MaxPreparedTransactions = 32, Fsync = false });
        var orders = await _postgres.CreateDatabaseAsync("orders");
        var payments = _postgres.ConnectionString("payments"); // not created here: the payment service creates its database
        OrdersDb = NpgsqlDataSource.Create(orders);

        var coordinatorUrl = Url(FreePort.OnLoopback());
        CoordinatorUrl = coordinatorUrl;
        PaymentsUrl = Url(FreePort.OnLoopback());
        OrdersUrl = Url(FreePort.OnLoopback());
        var common = new[] { $"--contentRoot={_work.FullName}", "--Logging:LogLevel:Default=Warning" };
        var paymentsKey = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
        var ordersKey = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));

        await StartAsync(CoordinatorServer.BuildApp([
            $"--Urls={Origin(coordinatorUrl)}",
            "--TwoPC:NodeId=samples-test",
            "--Coordinator:Authentication:AllowAnonymous=true", // anonymous callers on loopback (issue 12: explicit)
            $"--Coordinator:Clients:orders:ApiKey={OrdersApiKey}",
            $"--TwoPC:LogDirectory={Path.Combine(_work.FullName, "log")}",
            $"--Coordinator:Participants:payments:CallbackUrl={PaymentsUrl}twopc",
            $"--Coordinator:Participants:payments:Key={paymentsKey}",
            $"--Coordinator:Participants:orders:CallbackUrl={OrdersUrl}twopc",
            $"--Coordinator:Participants:orders:Key={ordersKey}",
            "--Coordinator:Authentication:AllowAnonymous=true",
            .. common,
        ]));
        await StartAsync(await PaymentsService.BuildAsync([
            $"--Urls={Origin(PaymentsUrl)}",
            $"--ConnectionStrings:Payments={payments}",
            "--TwoPC:Participant:Name=payments",
            $"--TwoPC:Participant:CoordinatorUrl={coordinatorUrl}",
            $"--TwoPC:Participant:CallbackUrl={PaymentsUrl}twopc",
            $"--TwoPC:Participant:Key={paymentsKey}",
            .. common,
        ]));
        await StartAsync(await OrdersService.BuildAsync([
            $"--Urls={Origin(OrdersUrl)}",
            $"--ConnectionStrings:Orders={orders}",
            $"--Coordinator:Url={coordinatorUrl}",
            $"--Coordinator:ApiKey={OrdersApiKey}",
            $"--Payments:Url={PaymentsUrl}",
            "--TwoPC:Participant:Name=orders",
            $"--TwoPC:Participant:CallbackUrl={OrdersUrl}twopc",
            $"--TwoPC:Participant:Key={ordersKey}",
            .. common,
        ]));
        PaymentsDb = NpgsqlDataSource.Create(payments);
        Coordinator = new TwoPCClient(new HttpClient { BaseAddress = coordinatorUrl, Timeout = TimeSpan.FromSeconds(60) });
    }

    public async Task DisposeAsync()
    {
        Http.Dispose();
        Coordinator?.Http.Dispose();
        foreach (var app in Enumerable.Reverse(_apps))
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }

        if (OrdersDb is not null)
        {
            await OrdersDb.DisposeAsync();
        }

        if (PaymentsDb is not null)
        {
            await PaymentsDb.DisposeAsync();
        }

        if (_postgres is not null)
        {
            await _postgres.DisposeAsync();
        }

        _work.Delete(recursive: true);
    }

    public async Task<decimal> BalanceAsync(string customerId)
    {
        await using var connection = await PaymentsDb.OpenConnectionAsync();
        return await connection.ExecuteScalarAsync<decimal>("SELECT balance FROM wallets WHERE customer_id = @customerId", new { customerId });
    }

    public async Task<int> StockAsync(string sku)
    {
        await using var connection = await OrdersDb.OpenConnectionAsync();
        return await connection.ExecuteScalarAsync<int>("SELECT quantity FROM stock WHERE sku = @sku", new { sku });
    }

    public async Task<(long Orders, long Payments)> RowsAsync()
    {
        await using var orders = await OrdersDb.OpenConnectionAsync();
        await using var payments = await PaymentsDb.OpenConnectionAsync();
        return (await orders.ExecuteScalarAsync<long>("SELECT count(*) FROM orders"), await payments.ExecuteScalarAsync<long>("SELECT count(*) FROM payments"));
    }

    /// <summary>Prepared transactions of the whole server (eventually zero: phase 2 of a rollback may still be running).</summary>
    public async Task<long> PreparedAsync()
    {
        await using var connection = await OrdersDb.OpenConnectionAsync();
        for (var attempt = 0; ; attempt++)
        {
            var prepared = await connection.ExecuteScalarAsync<long>("SELECT count(*) FROM pg_prepared_xacts");
            if (prepared == 0 || attempt == 100)
            {
                return prepared;
            }

            await Task.Delay(50);
        }
    }

    private async Task StartAsync(WebApplication app)
    {
        _apps.Add(app);
        await app.StartAsync();
    }

    private static Uri Url(int port) => new(string.Create(CultureInfo.InvariantCulture, $"http://127.0.0.1:{port}/"));

    private static string Origin(Uri url) => url.AbsoluteUri.TrimEnd('/');
}

[CollectionDefinition(Name)]
public sealed class SampleServicesCollection : ICollectionFixture<SampleServicesFixture>
{
    public const string Name = "sample services";
}
