using System.Text;
using Npgsql;
using RabbitMQ.Client;
using TwoPC.Participants.RabbitMq.Tests.Infrastructure;
using TwoPC.Testing;
using TwoPC.TestServers;

namespace TwoPC.Participants.RabbitMq.Tests;

/// <summary>Issue 10, the inbox consumer's items: each test is named after its item.</summary>
[Collection("rabbitmq")]
public sealed class Issue10InboxTests(RabbitMqFixture fixture)
{
    [Fact]
    public async Task Item06_a_poison_message_on_a_classic_queue_is_dead_lettered_at_the_delivery_limit()
    {
        await using var world = await MessagingWorld.CreateAsync(fixture);
        await world.DrainAsync(RabbitMqTopology.DeadLetterQueue);
        var queue = RabbitMqFixture.NewQueueName("classic");
        await using (var channel = await world.Connection.CreateChannelAsync())
        {
            // A classic queue: the broker sets no x-delivery-count on its redeliveries.
            await channel.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false, arguments: new Dictionary<string, object?>
            {
                ["x-queue-type"] = "classic",
                ["x-dead-letter-exchange"] = RabbitMqTopology.DeadLetterExchange,
            });
            await channel.QueueBindAsync(queue, world.Exchange, "poison.*");
        }

        var attempts = 0;
        await using var consumer = await InboxConsumer.StartAsync(world.Connection, world.Database, new InboxConsumerOptions { Queue = queue, DeliveryLimit = 3, Concurrency = 1 }, (_, _, _, _) =>
        {
            Interlocked.Increment(ref attempts);
            throw new FormatException("cannot parse order");
        });
        await PublishAsync(world, "poison.order", "poison-1", "garbage");

        var deadLettered = new List<(string? MessageId, string Body, IDictionary<string, object?>? Headers, bool Persistent)>();
        await Eventually.TrueAsync(async () =>
        {
            deadLettered.AddRange(await world.DrainAsync(RabbitMqTopology.DeadLetterQueue));
            return deadLettered.Count > 0;
        }, TimeSpan.FromSeconds(20), () => $"not dead-lettered after {Volatile.Read(ref attempts)} deliveries in 20 s");

        Assert.True(deadLettered.Count == 1, $"not dead-lettered after {Volatile.Read(ref attempts)} deliveries in 20 s");
        Assert.Equal("poison-1", deadLettered[0].MessageId);
        Assert.Contains("delivery limit 3", Encoding.UTF8.GetString((byte[])deadLettered[0].Headers![InboxConsumer.DeadLetterReasonHeader]!), StringComparison.Ordinal);
        Assert.Equal(3, Volatile.Read(ref attempts));
    }

    [Fact]
    public async Task Item19_the_consumers_database_down_for_a_few_seconds_dead_letters_nothing_and_every_message_has_its_effect_once()
    {
        await using var postgres = await PostgresServer.StartAsync(RabbitMqFixture.PostgresOptions);
        await using var world = await MessagingWorld.CreateAsync(fixture);
        await world.DrainAsync(RabbitMqTopology.DeadLetterQueue);
        var connectionString = await postgres.CreateDatabaseAsync();
        await using var database = NpgsqlDataSource.Create(connectionString);
        await using (var setup = database.CreateCommand("CREATE TABLE effects (message_id text NOT NULL, body text NOT NULL)"))
        {
            await setup.ExecuteNonQueryAsync();
        }

        await using var consumer = await InboxConsumer.StartAsync(world.Connection, database, new InboxConsumerOptions { Queue = world.Queue, DeliveryLimit = 5, Concurrency = 4 }, async (message, connection, transaction, ct) =>
        {
            await using var insert = new NpgsqlCommand("INSERT INTO effects (message_id, body) VALUES ($1, $2)", connection, transaction);
            insert.Parameters.AddWithValue(message.MessageId);
            insert.Parameters.AddWithValue(Encoding.UTF8.GetString(message.Body.Span));
            await insert.ExecuteNonQueryAsync(ct);
        });

        for (var i = 0; i < 10; i++)
        {
            await PublishAsync(world, "order.placed", $"m-{i}", $"before {i}");
        }

        await Eventually.TrueAsync(async () => await CountAsync(database) == 10, TimeSpan.FromSeconds(60));

        // The database goes away while messages keep coming.
        await postgres.StopAsync();
        for (var i = 10; i < 30; i++)
        {
            await PublishAsync(world, "order.placed", $"m-{i}", $"during {i}");
        }

        await Task.Delay(TimeSpan.FromSeconds(4));
        var deadLettered = await world.DrainAsync(RabbitMqTopology.DeadLetterQueue);
        await postgres.StartAgainAsync();

        // Every message either has its effect or (the failure) was dead-lettered.
        await Eventually.TrueAsync(async () =>
        {
            deadLettered.AddRange(await world.DrainAsync(RabbitMqTopology.DeadLetterQueue));
            return await CountAsync(database) + deadLettered.Count >= 30;
        }, TimeSpan.FromSeconds(60));
        await Task.Delay(500);
        deadLettered.AddRange(await world.DrainAsync(RabbitMqTopology.DeadLetterQueue));
        Assert.Empty(deadLettered.Select(m => m.MessageId));
        await using var effects = database.CreateCommand("SELECT message_id FROM effects ORDER BY message_id");
        var ids = new List<string>();
        await using (var reader = await effects.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                ids.Add(reader.GetString(0));
            }
        }

        Assert.Equal(Enumerable.Range(0, 30).Select(i => $"m-{i}").Order(StringComparer.Ordinal), ids.Order(StringComparer.Ordinal));
    }

    private static async Task PublishAsync(MessagingWorld world, string routingKey, string messageId, string body)
    {
        await using var channel = await world.Connection.CreateChannelAsync(new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true));
        await channel.BasicPublishAsync(world.Exchange, routingKey, mandatory: true, new BasicProperties { Persistent = true, MessageId = messageId }, Encoding.UTF8.GetBytes(body));
    }

    private static async Task<long> CountAsync(NpgsqlDataSource database)
    {
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                await using var count = database.CreateCommand("SELECT count(*) FROM effects");
                return (long)(await count.ExecuteScalarAsync())!;
            }
            catch (NpgsqlException) when (attempt < 3)
            {
                // A pooled connection broken by the restart.
                await Task.Delay(200);
            }
        }
    }
}
