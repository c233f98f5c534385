using System.Text.Json;
using Dapper;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using RabbitMQ.Client;
using TwoPC.Participants.RabbitMq.Tests.Infrastructure;
using TwoPC.Samples.Readme;
using static TwoPC.Samples.Readme.ConsumerSnippets;
using TwoPC.Testing;

namespace TwoPC.Participants.RabbitMq.Tests.Consumers.Readme;

/// <summary>The README's typed consumer (Samples/TwoPC.Samples.Readme/ConsumerSnippets.cs) run against a real broker and database.</summary>
[Collection("rabbitmq")]
public sealed class ReadmeTypedConsumerTests(RabbitMqFixture fixture)
{
    [Fact]
    public async Task The_readme_consumer_records_a_published_order_once()
    {
        await using var world = await MessagingWorld.CreateAsync(fixture);
        await using (var create = world.Database.CreateCommand("CREATE TABLE shipments (order_id text PRIMARY KEY, sku text NOT NULL, quantity int NOT NULL)"))
        {
            await create.ExecuteNonQueryAsync();
        }

        var connectionString = world.ConnectionString;
        var brokerUri = world.Broker.AmqpUri;
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders();

        // The README's registration (region ConsumerSnippets.cs#registration; the handler is region #handler).
        ConsumerSnippets.Register(builder, connectionString, brokerUri);

        using var host = builder.Build();
        await host.StartAsync();
        await Eventually.TrueAsync(async () => await world.HasConsumerAsync("shipping.order-placed"), TimeSpan.FromSeconds(30));

        for (var copy = 0; copy < 2; copy++)
        {
            // The same committed message twice (as after a publisher retry): one shipment.
            await using var channel = await world.Connection.CreateChannelAsync(new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true));
            await channel.BasicPublishAsync("orders", "order.placed", mandatory: true, new BasicProperties { Persistent = true, MessageId = "tx-1.0" },
                JsonSerializer.SerializeToUtf8Bytes(new OrderPlaced("o-1", "sku-9", 3), JsonSerializerOptions.Web));
        }

        await Eventually.TrueAsync(async () => await world.QueueEmptyAsync("shipping.order-placed") && await ShipmentsAsync(world) == 1, TimeSpan.FromSeconds(30));
        await host.StopAsync();
        Assert.Equal(1, await ShipmentsAsync(world));
        await using var connection = await world.Database.OpenConnectionAsync();
        Assert.Equal(3, await connection.QuerySingleAsync<int>("SELECT quantity FROM shipments WHERE order_id = 'o-1'"));
    }

    private static async Task<long> ShipmentsAsync(MessagingWorld world)
    {
        await using var count = world.Database.CreateCommand("SELECT count(*) FROM shipments");
        return (long)(await count.ExecuteScalarAsync())!;
    }
}
