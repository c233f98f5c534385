using System.Text;
using Npgsql;
using RabbitMQ.Client;
using TwoPC.Participants.RabbitMq.Tests.Infrastructure;
using TwoPC.Testing;

namespace TwoPC.Participants.RabbitMq.Tests;

/// <summary>Real processes (Tests/TwoPC.CrashHost) SIGKILLed at a named step, then restarted.</summary>
[Collection("rabbitmq")]
public sealed class RabbitMqCrashTests(RabbitMqFixture fixture)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Coordinator_killed_after_the_decision_before_publishing_publishes_everything_after_restart_and_effects_happen_once()
    {
        await using var world = await MessagingWorld.CreateAsync(fixture);
        var log = Directory.CreateTempSubdirectory("twopc-mq-crash-").FullName;
        try
        {
            using (var run = CrashHostProcess.Start(["mq-run", "--log", log, "--db", world.ConnectionString, "--amqp", world.Broker.AmqpUri.ToString(), "--exchange", world.Exchange, "--messages", "3", "--crash-step", "DecisionLogged"]))
            {
                var line = await run.WaitForLineAsync(Wait, "CRASHPOINT", "DONE");
                Assert.True(line?.StartsWith("CRASHPOINT", StringComparison.Ordinal) == true, run.Describe());
                run.Kill();
                await run.WaitForExitAsync(Wait);
            }

            // The decision is durable; nothing is published and the database branch is prepared.
            Assert.Empty(await world.DrainAsync());
            Assert.Equal(0, await world.ValueAsync(1));

            using (var recover = CrashHostProcess.Start(["mq-recover", "--log", log, "--db", world.ConnectionString, "--amqp", world.Broker.AmqpUri.ToString()]))
            {
                var exit = await recover.WaitForExitAsync(Wait);
                Assert.True(exit == 0 && recover.StdoutLines.Contains("RECOVERED"), recover.Describe());
            }

            Assert.Equal(1, await world.ValueAsync(1));
            await using var consumer = await InboxConsumer.StartAsync(world.Connection, world.Database, new InboxConsumerOptions { Queue = world.Queue }, RecordEffectAsync);
            await WaitForEffectsAsync(world, 3);
            await Task.Delay(300);
            Assert.Equal(["message 0", "message 1", "message 2"], await EffectsAsync(world));
        }
        finally
        {
            Directory.Delete(log, recursive: true);
        }
    }

    /// <summary>
    /// Issue 10 item 1: the publishing branch is the only Yes (the PostgreSQL branch only reads). Its commit is
    /// two separately confirmed publishes, so the decision must be logged: the coordinator is killed after the
    /// first message is confirmed and before the second is handed to the broker, and the restarted one publishes
    /// both (at least once). Without a decision record the second was never published and the status was Unknown.
    /// </summary>
    [Fact]
    public async Task Item01_single_publishing_Yes_among_read_only_branches_killed_between_two_publishes_publishes_both_after_restart()
    {
        await using var world = await MessagingWorld.CreateAsync(fixture);
        var log = Directory.CreateTempSubdirectory("twopc-mq-crash-").FullName;
        try
        {
            string txId;
            using (var run = CrashHostProcess.Start(["mq-run", "--log", log, "--db", world.ConnectionString, "--amqp", world.Broker.AmqpUri.ToString(), "--exchange", world.Exchange,
                "--messages", "2", "--read-only", "--crash-before-publish", "1", "--queue", world.Queue]))
            {
                var line = await run.WaitForLineAsync(Wait, "CRASHPOINT", "DONE");
                Assert.True(line?.StartsWith("CRASHPOINT", StringComparison.Ordinal) == true, run.Describe());
                run.Kill();
                await run.WaitForExitAsync(Wait);
                txId = run.StdoutLines.Single(l => l.StartsWith("TX ", StringComparison.Ordinal))[3..];
            }

            // Half published: the first message is in the queue, the second never reached the broker.
            Assert.Equal(["message 0"], (await world.DrainAsync()).Select(m => m.Body));

            using (var recover = CrashHostProcess.Start(["mq-recover", "--log", log, "--db", world.ConnectionString, "--amqp", world.Broker.AmqpUri.ToString(), "--status", txId]))
            {
                var exit = await recover.WaitForExitAsync(Wait);
                Assert.True(exit == 0 && recover.StdoutLines.Contains("RECOVERED"), recover.Describe());
                Assert.True(recover.StdoutLines.Contains("STATUS Committed"), recover.Describe());
            }

            // At least once: the first message may come again (same id); the second must come.
            var received = await world.DrainAsync();
            Assert.Contains("message 1", received.Select(m => m.Body));
            Assert.All(received, m => Assert.Contains("_" + txId + "_", m.MessageId, StringComparison.Ordinal));
            Assert.Equal(0, await world.ValueAsync(1));
        }
        finally
        {
            Directory.Delete(log, recursive: true);
        }
    }

    [Fact]
    public async Task Consumer_killed_after_the_database_commit_before_the_ack_has_each_effect_once()
    {
        await using var world = await MessagingWorld.CreateAsync(fixture);
        await using (var channel = await world.Connection.CreateChannelAsync(new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true)))
        {
            for (var i = 0; i < 3; i++)
            {
                await channel.BasicPublishAsync(world.Exchange, "order.placed", mandatory: true, new BasicProperties { Persistent = true, MessageId = $"m-{i}" }, Encoding.UTF8.GetBytes($"message {i}"));
            }
        }

        using (var consume = CrashHostProcess.Start(["inbox-consume", "--db", world.ConnectionString, "--amqp", world.Broker.AmqpUri.ToString(), "--queue", world.Queue, "--crash-after-commit", "2"]))
        {
            var line = await consume.WaitForLineAsync(Wait, "CRASHPOINT");
            Assert.True(line is not null, consume.Describe());
            consume.Kill();
            await consume.WaitForExitAsync(Wait);
        }

        // Two effects committed; the second message was never acknowledged, so the broker redelivers it.
        Assert.Equal(2, (await EffectsAsync(world)).Count);
        await using var consumer = await InboxConsumer.StartAsync(world.Connection, world.Database, new InboxConsumerOptions { Queue = world.Queue }, RecordEffectAsync);
        await WaitForEffectsAsync(world, 3);
        await Task.Delay(500);
        Assert.Equal(["message 0", "message 1", "message 2"], await EffectsAsync(world));
    }

    /// <summary>
    /// Issue 13, item 1 (and 5): with the last-resource commit the PostgreSQL branch is the decision and the staged
    /// messages ride in its commit marker, so no decision is forced to the log. Killed right after that COMMIT: the
    /// database change is committed, nothing is published; the restarted coordinator finds the marker (R1) and publishes
    /// every message from its payload, and the inbox makes each effect happen once.
    /// </summary>
    [Fact]
    public async Task Last_resource_commit_killed_after_the_marker_commit_publishes_the_messages_from_the_marker_after_restart()
    {
        await using var world = await MessagingWorld.CreateAsync(fixture);
        var log = Directory.CreateTempSubdirectory("twopc-mq-lrc-crash-").FullName;
        try
        {
            using (var run = CrashHostProcess.Start(["mq-run", "--lrc", "--log", log, "--db", world.ConnectionString, "--amqp", world.Broker.AmqpUri.ToString(), "--exchange", world.Exchange, "--messages", "3", "--crash-step", "AfterMarkerCommit"]))
            {
                var line = await run.WaitForLineAsync(Wait, "CRASHPOINT", "DONE");
                Assert.True(line?.StartsWith("CRASHPOINT", StringComparison.Ordinal) == true, run.Describe());
                run.Kill();
                await run.WaitForExitAsync(Wait);
            }

            // The decision is the committed marker: the row is updated, nothing is published, nothing is prepared.
            Assert.Empty(await world.DrainAsync());
            Assert.Equal(1, await world.ValueAsync(1));
            await using (var prepared = world.Database.CreateCommand("SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database()"))
            {
                Assert.Equal(0L, (long)(await prepared.ExecuteScalarAsync())!);
            }

            using (var recover = CrashHostProcess.Start(["mq-recover", "--lrc", "--log", log, "--db", world.ConnectionString, "--amqp", world.Broker.AmqpUri.ToString()]))
            {
                var exit = await recover.WaitForExitAsync(Wait);
                Assert.True(exit == 0 && recover.StdoutLines.Contains("RECOVERED"), recover.Describe());
            }

            await using var consumer = await InboxConsumer.StartAsync(world.Connection, world.Database, new InboxConsumerOptions { Queue = world.Queue }, RecordEffectAsync);
            await WaitForEffectsAsync(world, 3);
            await Task.Delay(300);
            Assert.Equal(["message 0", "message 1", "message 2"], await EffectsAsync(world));
            await using var markers = world.Database.CreateCommand("SELECT count(*) FROM twopc.commit_markers WHERE state = 'C'");
            Assert.Equal(0L, (long)(await markers.ExecuteScalarAsync())!);
        }
        finally
        {
            Directory.Delete(log, recursive: true);
        }
    }

    private static async Task RecordEffectAsync(InboxMessage message, NpgsqlConnection connection, NpgsqlTransaction transaction, CancellationToken cancellationToken)
    {
        await using var insert = new NpgsqlCommand("INSERT INTO effects (message_id, body) VALUES ($1, $2)", connection, transaction);
        insert.Parameters.AddWithValue(message.MessageId);
        insert.Parameters.AddWithValue(Encoding.UTF8.GetString(message.Body.Span));
        await insert.ExecuteNonQueryAsync(cancellationToken);
    }

    private static async Task<List<string>> EffectsAsync(MessagingWorld world)
    {
        var effects = new List<string>();
        await using var query = world.Database.CreateCommand("SELECT body FROM effects ORDER BY body");
        await using var reader = await query.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            effects.Add(reader.GetString(0));
        }

        return effects;
    }

    private static async Task WaitForEffectsAsync(MessagingWorld world, int count)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while ((await EffectsAsync(world)).Count < count)
        {
            Assert.True(DateTime.UtcNow < deadline, $"fewer than {count} effects after 30 s");
            await Task.Delay(100);
        }
    }
}
