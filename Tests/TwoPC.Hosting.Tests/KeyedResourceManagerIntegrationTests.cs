using Dapper;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Npgsql;
using RabbitMQ.Client;
using TwoPC.Participants.PostgreSql;
using TwoPC.Participants.RabbitMq;
using TwoPC.Protocol;
using TwoPC.TestServers;
using TwoPC.Transactions;

namespace TwoPC.Hosting.Tests;

/// <summary>A private PostgreSQL server and RabbitMQ node for <see cref="KeyedResourceManagerIntegrationTests"/>.</summary>
public sealed class PostgresAndRabbitMqFixture : IAsyncLifetime
{
    public PostgresServer Postgres { get; private set; } = null!;

    public RabbitMqServer Broker { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var postgres = PostgresServer.StartAsync(new PostgresServerOptions { Fsync = false });
        var broker = RabbitMqServer.StartAsync();
        try
        {
            await Task.WhenAll(postgres, broker);
        }
        catch
        {
            // xunit does not dispose a fixture whose initialization failed: stop whichever started.
            if (postgres.IsCompletedSuccessfully)
            {
                await postgres.Result.DisposeAsync();
            }

            if (broker.IsCompletedSuccessfully)
            {
                await broker.Result.DisposeAsync();
            }

            throw;
        }

        Postgres = postgres.Result;
        Broker = broker.Result;
    }

    public async Task DisposeAsync() => await Task.WhenAll(Postgres.DisposeAsync().AsTask(), Broker.DisposeAsync().AsTask());
}

/// <summary>Issue 15, item 7: a host built with AddPostgres / AddRabbitMq commits across two databases and a broker, each resolved by its name.</summary>
public sealed class KeyedResourceManagerIntegrationTests(PostgresAndRabbitMqFixture fixture) : IClassFixture<PostgresAndRabbitMqFixture>, IDisposable
{
    private readonly DirectoryInfo _log = Directory.CreateTempSubdirectory("twopc-keyed-it-");

    public void Dispose() => _log.Delete(recursive: true);

    [Fact]
    public async Task A_host_built_with_AddPostgres_and_AddRabbitMq_commits_through_resource_managers_resolved_by_name()
    {
        var ordersDb = await fixture.Postgres.CreateDatabaseAsync();
        var paymentsDb = await fixture.Postgres.CreateDatabaseAsync();
        foreach (var db in new[] { ordersDb, paymentsDb })
        {
            await using var connection = new NpgsqlConnection(db);
            await connection.ExecuteAsync("CREATE TABLE entries (id text PRIMARY KEY)");
        }

        var exchange = "keyed-ex-" + Guid.NewGuid().ToString("N")[..8];
        var queue = "keyed-q-" + Guid.NewGuid().ToString("N")[..8];
        await using var admin = await new ConnectionFactory { Uri = fixture.Broker.AmqpUri }.CreateConnectionAsync();
        await using (var channel = await admin.CreateChannelAsync())
        {
            await RabbitMqTopology.DeclareConsumerQueueAsync(channel, exchange, queue, "entry.*");
        }

        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["TwoPC:NodeId"] = "keyed-it", ["TwoPC:LogDirectory"] = _log.FullName });
        builder.Services.AddTwoPhaseCommit(builder.Configuration.GetSection("TwoPC"))
            .AddPostgres("orders", ordersDb)
            .AddPostgres("payments", paymentsDb)
            .AddRabbitMq("events", fixture.Broker.AmqpUri);
        using var host = builder.Build();
        await host.StartAsync();

        var coordinator = host.Services.GetRequiredService<TransactionCoordinator>();
        var orders = host.Services.GetRequiredKeyedService<PostgresResourceManager>("orders");
        var payments = host.Services.GetRequiredKeyedService<PostgresResourceManager>("payments");
        var events = host.Services.GetRequiredKeyedService<RabbitMqResourceManager>("events");
        var id = Guid.NewGuid().ToString("N");
        await using (var tx = coordinator.Begin(TimeSpan.FromSeconds(30)))
        {
            foreach (var rm in new[] { orders, payments })
            {
                var branch = await rm.EnlistAsync(tx);
                await branch.Connection.ExecuteAsync("INSERT INTO entries (id) VALUES (@id)", new { id }, branch.Transaction);
            }

            events.Enlist(tx).Publish(new OutgoingMessage(exchange, "entry.created", System.Text.Encoding.UTF8.GetBytes(id)));
            Assert.Equal(OutcomeKind.Committed, (await tx.CommitAsync()).Kind);
        }

        foreach (var db in new[] { ordersDb, paymentsDb })
        {
            await using var connection = new NpgsqlConnection(db);
            Assert.Equal(id, await connection.QuerySingleAsync<string>("SELECT id FROM entries"));
            Assert.Equal(0, await connection.ExecuteScalarAsync<long>("SELECT count(*) FROM pg_prepared_xacts"));
        }

        await using (var channel = await admin.CreateChannelAsync())
        {
            var message = await channel.BasicGetAsync(queue, autoAck: true);
            Assert.NotNull(message);
            Assert.Equal(id, System.Text.Encoding.UTF8.GetString(message.Body.Span));
        }

        await host.StopAsync();
    }

    [Fact]
    public async Task The_containers_TimeProvider_is_the_clock_of_the_coordinator_and_of_AddPostgres()
    {
        var ordersDb = await fixture.Postgres.CreateDatabaseAsync();

        // A clock years behind the system's: a deadline read against the system clock would already have passed.
        var clock = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(new DateTimeOffset(2001, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["TwoPC:NodeId"] = "keyed-time", ["TwoPC:LogDirectory"] = _log.FullName });
        builder.Services.AddSingleton<TimeProvider>(clock);
        builder.Services.AddTwoPhaseCommit(builder.Configuration.GetSection("TwoPC"))
            .AddPostgres("orders", ordersDb, o => o.BoundLockWaitsByDeadline = true);
        using var host = builder.Build();
        await host.StartAsync();

        var coordinator = host.Services.GetRequiredService<TransactionCoordinator>();
        var orders = host.Services.GetRequiredKeyedService<PostgresResourceManager>("orders");
        await using (var tx = coordinator.Begin(TimeSpan.FromSeconds(30)))
        {
            Assert.Equal(clock.GetUtcNow().AddSeconds(30), tx.Deadline);
            var branch = await orders.EnlistAsync(tx);

            // The branch's lock bound is the time left on the container's clock: 30 s, not the 1 ms floor of a passed deadline.
            Assert.Equal("30s", await branch.Connection.QuerySingleAsync<string>("SHOW lock_timeout", transaction: branch.Transaction));
        }

        await host.StopAsync();
    }
}
