using System.Text;
using Npgsql;
using RabbitMQ.Client;
using TwoPC.Participants.RabbitMq.Tests.Infrastructure;

namespace TwoPC.Participants.RabbitMq.Tests;

[Collection("rabbitmq")]
public sealed class InboxConsumerTests(RabbitMqFixture fixture)
{
    [Fact]
    public async Task The_same_message_id_delivered_twice_has_its_effect_once()
    {
        await using var world = await MessagingWorld.CreateAsync(fixture);
        await using var consumer = await StartConsumerAsync(world, RecordEffect);

        await PublishRawAsync(world, "m-1", "first copy");
        await PublishRawAsync(world, "m-1", "second copy");
        await PublishRawAsync(world, "m-2", "other");

        await WaitForAsync(async () => await EffectCountAsync(world) == 2 && await world.QueueEmptyAsync());
        await Task.Delay(300);
        Assert.Equal(["m-1:first copy", "m-2:other"], await world.EffectsAsync());
    }

    [Fact]
    public async Task A_handler_that_throws_once_rolls_back_and_the_redelivery_has_its_effect_once()
    {
        await using var world = await MessagingWorld.CreateAsync(fixture);
        var failures = 0;
        await using var consumer = await StartConsumerAsync(world, async (message, connection, transaction, ct) =>
        {
            await RecordEffect(message, connection, transaction, ct);
            if (Interlocked.Increment(ref failures) == 1)
            {
                throw new InvalidOperationException("transient handler failure after writing");
            }
        });

        await PublishRawAsync(world, "m-1", "payload");

        await WaitForAsync(async () => await EffectCountAsync(world) == 1 && await world.QueueEmptyAsync());
        await Task.Delay(300);
        Assert.Equal(["m-1:payload"], await world.EffectsAsync());
        Assert.Equal(2, failures);
    }

    [Fact]
    public async Task A_poison_message_is_dead_lettered_after_the_delivery_limit_with_the_reason()
    {
        await using var world = await MessagingWorld.CreateAsync(fixture);
        await world.DrainAsync(RabbitMqTopology.DeadLetterQueue);
        var attempts = 0;
        await using var consumer = await StartConsumerAsync(world, (_, _, _, _) =>
        {
            Interlocked.Increment(ref attempts);
            throw new FormatException("cannot parse order");
        }, deliveryLimit: 3);

        await PublishRawAsync(world, "poison-1", "garbage");

        var deadLettered = await WaitForDeadLetterAsync(world);
        Assert.Equal("poison-1", deadLettered.MessageId);
        var reason = Encoding.UTF8.GetString((byte[])deadLettered.Headers![InboxConsumer.DeadLetterReasonHeader]!);
        Assert.Contains("cannot parse order", reason, StringComparison.Ordinal);
        Assert.Contains("delivery limit 3", reason, StringComparison.Ordinal);
        Assert.Equal(3, attempts);
        Assert.Equal(0, await EffectCountAsync(world));
    }

    [Fact]
    public async Task A_message_without_message_id_is_dead_lettered_not_processed()
    {
        await using var world = await MessagingWorld.CreateAsync(fixture);
        await world.DrainAsync(RabbitMqTopology.DeadLetterQueue);
        await using var consumer = await StartConsumerAsync(world, RecordEffect);

        await PublishRawAsync(world, null, "anonymous");

        var deadLettered = await WaitForDeadLetterAsync(world);
        Assert.Contains("no MessageId", Encoding.UTF8.GetString((byte[])deadLettered.Headers![InboxConsumer.DeadLetterReasonHeader]!), StringComparison.Ordinal);
        Assert.Equal(0, await EffectCountAsync(world));
    }

    [Fact]
    public async Task Messages_published_by_a_committed_global_transaction_are_consumed_exactly_once()
    {
        await using var world = await MessagingWorld.CreateAsync(fixture);
        await using var consumer = await StartConsumerAsync(world, RecordEffect);
        for (var i = 0; i < 5; i++)
        {
            var tx = world.Coordinator.Begin();
            var db = await world.Postgres.EnlistAsync(tx);
            world.Rabbit.Enlist(tx).Publish(world.Exchange, "order.placed", Encoding.UTF8.GetBytes($"order {i}"));
            await using (var update = new NpgsqlCommand("UPDATE items SET value = value + 1 WHERE id = 1", db.Connection, db.Transaction))
            {
                await update.ExecuteNonQueryAsync();
            }

            Assert.Equal(TwoPC.Transactions.OutcomeKind.Committed, (await tx.CommitAsync()).Kind);
        }

        await WaitForAsync(async () => await EffectCountAsync(world) == 5);
        Assert.Equal(5, await world.ValueAsync(1));
    }

    [Fact]
    public async Task Expired_inbox_rows_are_cleaned_up_in_bounded_batches()
    {
        await using var world = await MessagingWorld.CreateAsync(fixture);
        await using var consumer = await InboxConsumer.StartAsync(world.Connection, world.Database,
            new InboxConsumerOptions { Queue = world.Queue, InboxRetention = TimeSpan.FromHours(1), CleanupBatchSize = 10 }, RecordEffect);
        await using (var seed = world.Database.CreateCommand($"INSERT INTO twopc.inbox (consumer, message_id, received_at) SELECT '{world.Queue}', 'old-' || g, now() - interval '2 hours' FROM generate_series(1, 25) g; INSERT INTO twopc.inbox (consumer, message_id) VALUES ('{world.Queue}', 'fresh')"))
        {
            await seed.ExecuteNonQueryAsync();
        }

        Assert.Equal(10, await consumer.CleanupAsync());
        Assert.Equal(10, await consumer.CleanupAsync());
        Assert.Equal(5, await consumer.CleanupAsync());
        Assert.Equal(0, await consumer.CleanupAsync());
        await using var remaining = world.Database.CreateCommand("SELECT count(*) FROM twopc.inbox");
        Assert.Equal(1L, await remaining.ExecuteScalarAsync());
    }

    private static async Task RecordEffect(InboxMessage message, NpgsqlConnection connection, NpgsqlTransaction transaction, CancellationToken cancellationToken)
    {
        await using var insert = new NpgsqlCommand("INSERT INTO effects (message_id, body) VALUES ($1, $2)", connection, transaction);
        insert.Parameters.AddWithValue(message.MessageId);
        insert.Parameters.AddWithValue(Encoding.UTF8.GetString(message.Body.Span));
        await insert.ExecuteNonQueryAsync(cancellationToken);
    }

    private static Task<InboxConsumer> StartConsumerAsync(MessagingWorld world, InboxHandler handler, int deliveryLimit = 5) =>
        InboxConsumer.StartAsync(world.Connection, world.Database, new InboxConsumerOptions { Queue = world.Queue, DeliveryLimit = deliveryLimit, Concurrency = 2 }, handler);

    private static async Task PublishRawAsync(MessagingWorld world, string? messageId, string body)
    {
        await using var channel = await world.Connection.CreateChannelAsync(new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true));
        await channel.BasicPublishAsync(world.Exchange, "order.placed", mandatory: true, new BasicProperties { Persistent = true, MessageId = messageId }, Encoding.UTF8.GetBytes(body));
    }

    private static async Task<long> EffectCountAsync(MessagingWorld world)
    {
        await using var count = world.Database.CreateCommand("SELECT count(*) FROM effects");
        return (long)(await count.ExecuteScalarAsync())!;
    }

    private static async Task<(string? MessageId, string Body, IDictionary<string, object?>? Headers, bool Persistent)> WaitForDeadLetterAsync(MessagingWorld world)
    {
        var found = new List<(string?, string, IDictionary<string, object?>?, bool)>();
        await WaitForAsync(async () =>
        {
            found.AddRange(await world.DrainAsync(RabbitMqTopology.DeadLetterQueue));
            return found.Count > 0;
        });
        return Assert.Single(found);
    }

    private static async Task WaitForAsync(Func<Task<bool>> condition)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "the condition did not hold within 30 s");
            await Task.Delay(100);
        }
    }
}
