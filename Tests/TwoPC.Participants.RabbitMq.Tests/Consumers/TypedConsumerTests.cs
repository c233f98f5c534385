using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using RabbitMQ.Client;
using TwoPC.Participants.RabbitMq.Tests.Infrastructure;
using TwoPC.Testing;

namespace TwoPC.Participants.RabbitMq.Tests.Consumers;

/// <summary>Issue 15 item 11: typed exactly-once consumers (AddTwoPCConsumer) on a real RabbitMQ and PostgreSQL.</summary>
[Collection("rabbitmq")]
public sealed class TypedConsumerTests(RabbitMqFixture fixture)
{
    [Fact]
    public async Task The_handler_runs_once_per_message_id_even_when_it_is_delivered_twice()
    {
        await using var world = await MessagingWorld.CreateAsync(fixture);
        var probe = new Probe();
        using var host = await StartAsync(world, probe);

        await PublishAsync(world, "m-1", """{"orderId":"o-1","quantity":2}""");
        await PublishAsync(world, "m-1", """{"orderId":"o-1","quantity":2}""");
        await PublishAsync(world, "m-2", """{"orderId":"o-2","quantity":5}""");

        await Eventually.TrueAsync(async () => (await world.EffectsAsync()).Count == 2 && await world.QueueEmptyAsync(Queue(world)), TimeSpan.FromSeconds(30));
        await host.StopAsync();
        Assert.Equal(["m-1:o-1x2", "m-2:o-2x5"], await world.EffectsAsync());
        Assert.Equal(2, probe.Calls.Count);
    }

    [Fact]
    public async Task A_throwing_handler_is_retried_then_dead_lettered_with_the_error_and_nothing_commits()
    {
        await using var world = await MessagingWorld.CreateAsync(fixture);
        await world.DrainAsync(RabbitMqTopology.DeadLetterQueue);
        var probe = new Probe { Fail = _ => throw new InvalidOperationException("warehouse closed") };
        using var host = await StartAsync(world, probe, o =>
        {
            o.RetryAttempts = 2;
            o.RetryDelay = TimeSpan.FromMilliseconds(1);
            o.Inbox.DeliveryLimit = 2;
        });

        await PublishAsync(world, "m-fail", """{"orderId":"o-9","quantity":1}""");

        var deadLettered = await WaitForDeadLetterAsync(world, "m-fail");
        await host.StopAsync();
        var reason = Encoding.UTF8.GetString((byte[])deadLettered.Headers![InboxConsumer.DeadLetterReasonHeader]!);
        Assert.Contains("warehouse closed", reason, StringComparison.Ordinal);
        Assert.Contains("delivery limit 2", reason, StringComparison.Ordinal);
        // 2 deliveries × (1 attempt + 2 retries); each attempt's write was rolled back.
        Assert.Equal(6, probe.Calls.Count);
        Assert.Equal([1, 2, 3, 1, 2, 3], probe.Calls.Select(c => c.Attempt));
        Assert.Empty(await world.EffectsAsync());
        Assert.True(await world.QueueEmptyAsync(Queue(world)));
    }

    [Fact]
    public async Task A_body_that_does_not_deserialize_is_dead_lettered_at_once()
    {
        await using var world = await MessagingWorld.CreateAsync(fixture);
        await world.DrainAsync(RabbitMqTopology.DeadLetterQueue);
        var probe = new Probe();
        using var host = await StartAsync(world, probe);

        await PublishAsync(world, "m-poison", "not json at all");

        var deadLettered = await WaitForDeadLetterAsync(world, "m-poison");
        await host.StopAsync();
        var reason = Encoding.UTF8.GetString((byte[])deadLettered.Headers![InboxConsumer.DeadLetterReasonHeader]!);
        Assert.StartsWith("poison message: the body is not a OrderShipped", reason, StringComparison.Ordinal);
        Assert.Empty(probe.Calls);
    }

    [Fact]
    public async Task Each_message_gets_its_own_DI_scope()
    {
        await using var world = await MessagingWorld.CreateAsync(fixture);
        var probe = new Probe();
        using var host = await StartAsync(world, probe);

        for (var i = 1; i <= 3; i++)
        {
            await PublishAsync(world, $"m-{i}", $$"""{"orderId":"o-{{i}}","quantity":1}""");
        }

        await Eventually.TrueAsync(() => probe.Calls.Count == 3, TimeSpan.FromSeconds(30));
        await host.StopAsync();
        Assert.Equal(3, probe.Calls.Select(c => c.Scope).Distinct().Count());
        Assert.Equal(3, probe.Calls.Select(c => c.Handler).Distinct().Count());
    }

    [Fact]
    public async Task A_retried_attempt_commits_only_its_own_writes_and_the_message_is_acked_after_the_commit()
    {
        await using var world = await MessagingWorld.CreateAsync(fixture);
        var probe = new Probe { Fail = call => call.Attempt == 1 ? throw new TimeoutException("first attempt times out after writing") : null };
        using var host = await StartAsync(world, probe, o => o.RetryDelay = TimeSpan.FromMilliseconds(1));

        // Published by a global transaction: JSON body, MessageId {xid}.0.
        await using (var tx = world.Coordinator.Begin())
        {
            world.Rabbit.Enlist(tx).Publish(Exchange(world), "order.shipped", JsonSerializer.SerializeToUtf8Bytes(new OrderShipped("o-7", 3), JsonSerializerOptions.Web));
            await tx.CommitAsync();
        }

        await Eventually.TrueAsync(async () => (await world.EffectsAsync()).Count == 1 && await world.QueueEmptyAsync(Queue(world)), TimeSpan.FromSeconds(30));
        await host.StopAsync();
        var effect = Assert.Single(await world.EffectsAsync());
        Assert.EndsWith(".0:o-7x3", effect, StringComparison.Ordinal);
        Assert.Equal([1, 2], probe.Calls.Select(c => c.Attempt));
    }

    [Fact]
    public async Task A_failed_delivery_is_redelivered_no_sooner_than_the_redelivery_delay()
    {
        await using var world = await MessagingWorld.CreateAsync(fixture);
        var stamps = new ConcurrentQueue<long>();
        var calls = 0;
        var probe = new Probe
        {
            Fail = _ =>
            {
                stamps.Enqueue(System.Diagnostics.Stopwatch.GetTimestamp());
                return Interlocked.Increment(ref calls) == 1 ? throw new InvalidOperationException("not yet") : null;
            },
        };
        using var host = await StartAsync(world, probe, o =>
        {
            o.RetryAttempts = 0;
            o.Inbox.RedeliveryDelay = TimeSpan.FromSeconds(1);
        });

        await PublishAsync(world, "m-held", """{"orderId":"o-3","quantity":1}""");

        await Eventually.TrueAsync(async () => (await world.EffectsAsync()).Count == 1, TimeSpan.FromSeconds(30));
        await host.StopAsync();
        // A lower bound only (a delay is never shorter than asked); without the delay the redelivery comes in milliseconds.
        var (first, second) = (stamps.ElementAt(0), stamps.ElementAt(1));
        Assert.True(System.Diagnostics.Stopwatch.GetElapsedTime(first, second) >= TimeSpan.FromSeconds(1), $"redelivered after {System.Diagnostics.Stopwatch.GetElapsedTime(first, second)}");
        Assert.Equal(["m-held:o-3x1"], await world.EffectsAsync());
    }

    private static string Exchange(MessagingWorld world) => world.Exchange + "-typed";

    private static string Queue(MessagingWorld world) => world.Queue + "-typed";

    /// <summary>A host with one typed consumer that declares its own exchange and queue; returns once it consumes.</summary>
    private static async Task<IHost> StartAsync(MessagingWorld world, Probe probe, Action<TwoPCConsumerOptions>? configure = null)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton(world.Database);
        builder.Services.AddSingleton(probe);
        builder.Services.AddScoped<ScopedService>();
        builder.Services.AddTwoPCConsumer<OrderShipped, OrderShippedHandler>(Queue(world), consumer =>
        {
            consumer.ConnectionFactory = MessagingWorld.Factory(world.Broker);
            consumer.Exchange = Exchange(world);
            consumer.RoutingKeys.Add("order.*");
            configure?.Invoke(consumer);
        });
        var host = builder.Build();
        await host.StartAsync();
        await Eventually.TrueAsync(async () => await world.HasConsumerAsync(Queue(world)), TimeSpan.FromSeconds(30));
        return host;
    }

    private static async Task PublishAsync(MessagingWorld world, string messageId, string body)
    {
        await using var channel = await world.Connection.CreateChannelAsync(new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true));
        await channel.BasicPublishAsync(Exchange(world), "order.shipped", mandatory: true, new BasicProperties { Persistent = true, MessageId = messageId }, Encoding.UTF8.GetBytes(body));
    }

    private static async Task<(string? MessageId, string Body, IDictionary<string, object?>? Headers, bool Persistent)> WaitForDeadLetterAsync(MessagingWorld world, string messageId)
    {
        var found = new List<(string? MessageId, string Body, IDictionary<string, object?>? Headers, bool Persistent)>();
        await Eventually.TrueAsync(async () =>
        {
            found.AddRange(await world.DrainAsync(RabbitMqTopology.DeadLetterQueue));
            return found.Any(m => m.MessageId == messageId);
        }, TimeSpan.FromSeconds(30));
        return found.Single(m => m.MessageId == messageId);
    }
}

public sealed record OrderShipped(string OrderId, int Quantity);

/// <summary>What the test sees of the handler's calls, and how it makes them fail.</summary>
internal sealed class Probe
{
    public ConcurrentQueue<(string MessageId, int Attempt, Guid Scope, Guid Handler)> CallQueue { get; } = new();

    public IReadOnlyList<(string MessageId, int Attempt, Guid Scope, Guid Handler)> Calls => [.. CallQueue];

    /// <summary>Called after the handler wrote its effect; may throw.</summary>
    public Func<(string MessageId, int Attempt), object?> Fail { get; init; } = _ => null;
}

internal sealed class ScopedService
{
    public Guid Id { get; } = Guid.NewGuid();
}

internal sealed class OrderShippedHandler(Probe probe, ScopedService scoped) : IMessageHandler<OrderShipped>
{
    private readonly Guid _id = Guid.NewGuid();

    public async Task HandleAsync(OrderShipped message, InboxContext context, CancellationToken cancellationToken)
    {
        await using var insert = new NpgsqlCommand("INSERT INTO effects (message_id, body) VALUES ($1, $2)", context.Connection, context.Transaction);
        insert.Parameters.AddWithValue(context.MessageId);
        insert.Parameters.AddWithValue($"{message.OrderId}x{message.Quantity}");
        await insert.ExecuteNonQueryAsync(cancellationToken);
        probe.CallQueue.Enqueue((context.MessageId, context.Attempt, scoped.Id, _id));
        probe.Fail((context.MessageId, context.Attempt));
    }
}
