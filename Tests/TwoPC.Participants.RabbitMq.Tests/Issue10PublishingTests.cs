using System.Diagnostics;
using System.Text;
using Npgsql;
using RabbitMQ.Client;
using TwoPC.Participants.PostgreSql;
using TwoPC.Participants.RabbitMq.Tests.Infrastructure;
using TwoPC.Protocol;
using TwoPC.TestServers;
using TwoPC.Testing;
using TwoPC.Transactions;
using TwoPC.Wal;
using Xunit.Abstractions;

namespace TwoPC.Participants.RabbitMq.Tests;

/// <summary>Issue 10, the publisher's items: each test is named after its item.</summary>
[Collection("rabbitmq")]
public sealed class Issue10PublishingTests(RabbitMqFixture fixture, ITestOutputHelper output)
{
    /// <summary>A routing key of 200 × "é" behind one ASCII letter: 401 bytes of UTF-8 in 201 characters.</summary>
    private static readonly string TooLongKey = "k" + new string('é', 200);

    [Fact]
    public async Task Item02_RabbitMq_only_transaction_whose_connection_drops_during_the_commit_publishes_once_the_broker_is_back()
    {
        RabbitMqServer? broker = null;
        var dropped = 0;
        var publisher = new RabbitMqPublisherOptions
        {
            BeforePublish = async _ =>
            {
                if (Interlocked.Exchange(ref dropped, 1) == 0)
                {
                    await broker!.CloseAllConnectionsAsync("test: the connection drops during the commit");
                }
            },
        };
        await using var world = await MessagingWorld.CreateAsync(fixture, publisher: publisher);
        broker = world.Broker;

        var tx = world.Coordinator.Begin();
        world.Rabbit.Enlist(tx).Publish(world.Exchange, "order.placed", "only"u8.ToArray());
        var outcome = await tx.CommitAsync().WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(1, dropped);
        Assert.True(outcome.Kind == OutcomeKind.Committed, $"{outcome.Kind}: {outcome.Reason}");
        Assert.Empty(world.Coordinator.GetHeuristics());
        var received = await world.DrainRecoveringAsync();
        Assert.Equal(["only"], received.DistinctBy(m => m.MessageId).Select(m => m.Body));
    }

    [Fact]
    public async Task Item03_publish_only_transaction_to_a_missing_exchange_rolls_back_cleanly_with_the_reason()
    {
        await using var world = await MessagingWorld.CreateAsync(fixture);
        await world.DrainAsync(world.Rabbit.Options.ParkingQueue);
        var exchange = RabbitMqFixture.NewQueueName("typo");

        var tx = world.Coordinator.Begin();
        world.Rabbit.Enlist(tx).Publish(exchange, "order.placed", "x"u8.ToArray());
        var outcome = await tx.CommitAsync();

        Assert.True(outcome.Kind == OutcomeKind.RolledBack, $"{outcome.Kind}: {outcome.Reason}");
        Assert.Contains($"exchange '{exchange}' does not exist", outcome.Reason, StringComparison.Ordinal);
        Assert.Empty(world.Coordinator.GetHeuristics());
        Assert.Empty(await world.DrainAsync(world.Rabbit.Options.ParkingQueue));
    }

    [Fact]
    public async Task Item04_a_message_with_an_AMQP_short_string_over_255_bytes_is_refused_at_Publish_and_the_rest_commits()
    {
        await using var world = await MessagingWorld.CreateAsync(fixture);
        var tx = world.Coordinator.Begin();
        var db = await world.Postgres.EnlistAsync(tx);
        var events = world.Rabbit.Enlist(tx);
        events.Publish(world.Exchange, "order.placed", "good"u8.ToArray());

        var routingKey = Record.Exception(() => events.Publish(world.Exchange, TooLongKey, "bad"u8.ToArray()));
        var header = Record.Exception(() => events.Publish(world.Exchange, "order.placed", "bad"u8.ToArray(), new Dictionary<string, string> { [new string('ü', 128)] = "v" }));
        var type = Record.Exception(() => events.Publish(new OutgoingMessage(world.Exchange, "order.placed", "bad"u8.ToArray(), Type: new string('€', 86))));
        var contentType = Record.Exception(() => events.Publish(new OutgoingMessage(world.Exchange, "order.placed", "bad"u8.ToArray(), ContentType: new string('a', 256))));
        var exchange = Record.Exception(() => events.Publish(new string('ß', 128), "order.placed", "bad"u8.ToArray()));

        Assert.Contains("routing key", Assert.IsType<ArgumentException>(routingKey).Message, StringComparison.Ordinal);
        Assert.Contains("401 bytes", routingKey.Message, StringComparison.Ordinal);
        Assert.Contains("header name", Assert.IsType<ArgumentException>(header).Message, StringComparison.Ordinal);
        Assert.Contains("type", Assert.IsType<ArgumentException>(type).Message, StringComparison.Ordinal);
        Assert.Contains("content type", Assert.IsType<ArgumentException>(contentType).Message, StringComparison.Ordinal);
        Assert.Contains("exchange", Assert.IsType<ArgumentException>(exchange).Message, StringComparison.Ordinal);
        Assert.Single(events.Staged);

        await using (var update = new NpgsqlCommand("UPDATE items SET value = 1 WHERE id = 1", db.Connection, db.Transaction))
        {
            await update.ExecuteNonQueryAsync();
        }

        var outcome = await tx.CommitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(outcome.Kind == OutcomeKind.Committed, $"{outcome.Kind}: {outcome.Reason}");
        Assert.Equal(["good"], (await world.DrainAsync()).Select(m => m.Body));
    }

    [Fact]
    public async Task Item04_an_unencodable_message_met_after_the_decision_is_parked_at_once_and_the_good_one_is_published_once()
    {
        // A decision logged by a version that did not check the limits: the commit must answer, not retry forever.
        await using var world = await MessagingWorld.CreateAsync(fixture);
        await world.DrainAsync(world.Rabbit.Options.ParkingQueue);
        var xid = Xid.Create(Xid.TwoPCFormatId, "item04-" + Guid.NewGuid().ToString("N")[..8], "1");
        var staged = StagedMessages.Encode([
            new OutgoingMessage(world.Exchange, "order.placed", "good"u8.ToArray()),
            new OutgoingMessage(world.Exchange, TooLongKey, "bad"u8.ToArray()),
        ]);

        var outcome = await world.Rabbit.CommitAsync(xid, staged, CancellationToken.None).AsTask().WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(BranchOutcome.Unknown, outcome);
        Assert.Equal([("good", RabbitMqResourceManager.MessageId(xid, 0))], (await world.DrainAsync()).Select(m => (m.Body, m.MessageId)));
        var parked = Assert.Single(await world.DrainAsync(world.Rabbit.Options.ParkingQueue));
        Assert.Equal(("bad", RabbitMqResourceManager.MessageId(xid, 1)), (parked.Body, parked.MessageId));
        Assert.Contains("401 bytes", Encoding.UTF8.GetString((byte[])parked.Headers![RabbitMqResourceManager.ParkedReasonHeader]!), StringComparison.Ordinal);
        Assert.Equal(TooLongKey, Encoding.UTF8.GetString((byte[])parked.Headers!["x-twopc-routing-key"]!));
    }

    [Fact]
    public async Task Item05_a_deleted_parking_queue_does_not_republish_confirmed_messages_and_the_parking_is_retried_alone()
    {
        await using var world = await MessagingWorld.CreateAsync(fixture);
        await world.Rabbit.WaitUntilConnectedAsync();
        await using (var channel = await world.Connection.CreateChannelAsync())
        {
            await channel.QueueDeleteAsync(world.Rabbit.Options.ParkingQueue);
        }

        var tx = world.Coordinator.Begin();
        var db = await world.Postgres.EnlistAsync(tx);
        var events = world.Rabbit.Enlist(tx);
        events.Publish(world.Exchange, "order.placed", "routable"u8.ToArray());
        events.Publish(world.Exchange, "nobody.listens", "unroutable"u8.ToArray());
        await using (var update = new NpgsqlCommand("UPDATE items SET value = 1 WHERE id = 1", db.Connection, db.Transaction))
        {
            await update.ExecuteNonQueryAsync();
        }

        var commit = tx.CommitAsync();
        var finished = await Task.WhenAny(commit, Task.Delay(TimeSpan.FromSeconds(30))) == commit;
        var received = await world.DrainAsync();

        // Exactly one copy: the failed parking must not publish the confirmed message again.
        Assert.Equal(["routable"], received.Select(m => m.Body));
        Assert.True(finished, "the commit did not finish within 30 s: the publish is being retried");
        var outcome = await commit;
        Assert.True(outcome.Kind == OutcomeKind.HeuristicHazard, $"{outcome.Kind}: {outcome.Reason}");
        var parked = Assert.Single(await world.DrainAsync(world.Rabbit.Options.ParkingQueue));
        Assert.Equal("unroutable", parked.Body);
        Assert.Equal(1, await world.ValueAsync(1));
    }

    [Fact]
    public async Task Item05_a_parking_queue_that_refuses_messages_is_retried_park_only_until_it_accepts_and_nothing_is_published_twice()
    {
        await using var world = await MessagingWorld.CreateAsync(fixture);
        await world.Rabbit.WaitUntilConnectedAsync();
        var parkingQueue = world.Rabbit.Options.ParkingQueue;
        await using (var channel = await world.Connection.CreateChannelAsync())
        {
            // Replaced by a queue that nacks every message (full at length 0, rejecting new ones).
            await channel.QueueDeleteAsync(parkingQueue);
            await channel.QueueDeclareAsync(parkingQueue, durable: true, exclusive: false, autoDelete: false, arguments: new Dictionary<string, object?>
            {
                ["x-queue-type"] = "classic",
                ["x-max-length"] = 0,
                ["x-overflow"] = "reject-publish",
            });
        }

        var tx = world.Coordinator.Begin();
        var db = await world.Postgres.EnlistAsync(tx);
        var events = world.Rabbit.Enlist(tx);
        events.Publish(world.Exchange, "order.placed", "routable"u8.ToArray());
        events.Publish(world.Exchange, "nobody.listens", "unroutable"u8.ToArray());
        await using (var update = new NpgsqlCommand("UPDATE items SET value = 1 WHERE id = 1", db.Connection, db.Transaction))
        {
            await update.ExecuteNonQueryAsync();
        }

        var commit = tx.CommitAsync();
        await Task.WhenAny(commit, Task.Delay(TimeSpan.FromSeconds(3)));
        Assert.False(commit.IsCompleted, "the commit finished although the undeliverable message could not be parked");
        // Reported to operators: the branch is committing and its last error says the parking failed.
        var inDoubt = world.Coordinator.GetInDoubt();
        Assert.True(inDoubt.Any(r => r.Detail?.Contains("could not be parked", StringComparison.Ordinal) == true), string.Join("; ", inDoubt.Select(r => r.Detail)));

        // The operator removes the broken queue; the next attempt declares it again and parks.
        await using (var channel = await world.Connection.CreateChannelAsync())
        {
            await channel.QueueDeleteAsync(parkingQueue);
        }

        var outcome = await commit.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(outcome.Kind == OutcomeKind.HeuristicHazard, $"{outcome.Kind}: {outcome.Reason}");
        Assert.Equal(["routable"], (await world.DrainAsync()).Select(m => m.Body));
        // The parking queue was declared again (a quorum queue) by the publisher's connection; on a loaded broker it can
        // take a moment before another connection sees it, so wait for it — the message must still be exactly there.
        List<string> parked = [];
        await Eventually.TrueAsync(async () =>
        {
            try
            {
                parked.AddRange((await world.DrainAsync(parkingQueue)).Select(m => m.Body));
            }
            catch (RabbitMQ.Client.Exceptions.OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == 404)
            {
                return false;
            }

            return parked.Count > 0;
        }, TimeSpan.FromSeconds(15));
        await Task.Delay(200);
        parked.AddRange((await world.DrainAsync(parkingQueue)).Select(m => m.Body));
        Assert.Equal(["unroutable"], parked);
    }

    [Fact]
    public async Task Item23_creating_the_resource_manager_leaves_the_callers_connection_factory_unchanged()
    {
        var factory = new ConnectionFactory { Uri = fixture.Broker.AmqpUri, AutomaticRecoveryEnabled = false, TopologyRecoveryEnabled = false, ClientProvidedName = "mine" };
        var properties = new Dictionary<string, object?>(factory.ClientProperties);

        await using var rm = await RabbitMqResourceManager.CreateAsync("item23", factory);
        await rm.WaitUntilConnectedAsync().WaitAsync(TimeSpan.FromSeconds(30));

        Assert.False(factory.AutomaticRecoveryEnabled);
        Assert.False(factory.TopologyRecoveryEnabled);
        Assert.Equal("mine", factory.ClientProvidedName);
        Assert.Equal(properties, factory.ClientProperties);
    }

    /// <summary>
    /// Items 21 and 22 (RabbitMQ part): a coordinator is built and recovers its PostgreSQL branch while the
    /// broker is down; the publishing branch of the same logged decision, and an inbox consumer started while
    /// the broker is down, both complete once it is back.
    /// </summary>
    [Fact]
    public async Task Item21_a_coordinator_and_an_inbox_consumer_start_and_recover_PostgreSQL_while_the_broker_is_down()
    {
        await using var broker = await RabbitMqServer.StartAsync();
        await using var world = await MessagingWorld.CreateAsync(fixture, broker);
        var log = Directory.CreateTempSubdirectory("twopc-mq-item21-").FullName;
        try
        {
            using (var run = CrashHostProcess.Start(["mq-run", "--log", log, "--db", world.ConnectionString, "--amqp", broker.AmqpUri.ToString(), "--exchange", world.Exchange, "--messages", "1", "--crash-step", "DecisionLogged"]))
            {
                var line = await run.WaitForLineAsync(TimeSpan.FromSeconds(60), "CRASHPOINT", "DONE");
                Assert.True(line?.StartsWith("CRASHPOINT", StringComparison.Ordinal) == true, run.Describe());
                run.Kill();
                await run.WaitForExitAsync(TimeSpan.FromSeconds(60));
            }

            await broker.StopAsync();

            // Built while the broker is down: nothing throws, and the PostgreSQL branch is committed by recovery.
            using var postgres = await PostgresResourceManager.CreateAsync("mq-db", world.Database);
            await using var rabbit = await RabbitMqResourceManager.CreateAsync("mq-events", MessagingWorld.Factory(broker));
            Assert.False(rabbit.IsConnected);
            await using var coordinator = new TransactionCoordinator(
                new TransactionCoordinatorOptions { NodeId = "mq-crash", RetryBaseDelay = TimeSpan.FromMilliseconds(50), RetryMaxDelay = TimeSpan.FromSeconds(1), BranchCallTimeout = TimeSpan.FromSeconds(5) },
                new FileTransactionLog(new FileTransactionLogOptions { Directory = log }),
                [postgres, rabbit]);
            await coordinator.StartAsync().WaitAsync(TimeSpan.FromSeconds(60));
            await using var consumer = await InboxConsumer.StartAsync(MessagingWorld.Factory(broker), world.Database, new InboxConsumerOptions { Queue = world.Queue }, RecordEffectAsync);
            await Eventually.TrueAsync(async () => await world.ValueAsync(1) == 1, TimeSpan.FromSeconds(60), () => "the PostgreSQL branch was not committed while the broker was down");
            Assert.Equal(1, coordinator.RecoveringTransactions);

            await broker.StartAgainAsync();
            await Eventually.TrueAsync(() => Task.FromResult(coordinator.RecoveringTransactions == 0), TimeSpan.FromSeconds(60), () => "the publishing branch was not committed after the broker came back");
            await Eventually.TrueAsync(async () => await EffectCountAsync(world) == 1, TimeSpan.FromSeconds(60), () => "the inbox consumer started while the broker was down consumed nothing");
            Assert.Empty(coordinator.GetHeuristics());
        }
        finally
        {
            Directory.Delete(log, recursive: true);
        }
    }

    /// <summary>
    /// Item 22: with the coordinator's default backoff (up to 30 s), a commit whose broker was down for a few
    /// seconds resumes as soon as the connection is back. Measured, not asserted (printed to the test output).
    /// </summary>
    [Fact]
    public async Task Item22_a_commit_waiting_for_a_broker_outage_publishes_promptly_when_the_connection_is_back()
    {
        await using var broker = await RabbitMqServer.StartAsync();
        var back = Stopwatch.StartNew();
        Task? outage = null;
        await using var world = await MessagingWorld.CreateAsync(fixture, broker, o =>
        {
            o.RetryBaseDelay = TimeSpan.FromMilliseconds(50);
            o.RetryMaxDelay = TimeSpan.FromSeconds(30);
            o.BranchCallTimeout = TimeSpan.FromSeconds(30);
            o.StepHook = async (step, _, _) =>
            {
                if (step is ProtocolStep.DecisionLogged or ProtocolStep.AfterMarkerCommit && outage is null)
                {
                    await broker.StopAsync();
                    outage = Task.Run(async () =>
                    {
                        await Task.Delay(TimeSpan.FromSeconds(8));
                        await broker.StartAgainAsync();
                        back.Restart();
                    });
                }
            };
        });

        var tx = world.Coordinator.Begin();
        var db = await world.Postgres.EnlistAsync(tx);
        world.Rabbit.Enlist(tx).Publish(world.Exchange, "order.placed", "after the outage"u8.ToArray());
        await using (var update = new NpgsqlCommand("UPDATE items SET value = 1 WHERE id = 1", db.Connection, db.Transaction))
        {
            await update.ExecuteNonQueryAsync();
        }

        var outcome = await tx.CommitAsync().WaitAsync(TimeSpan.FromSeconds(120));
        var stall = back.Elapsed;
        await outage!;
        output.WriteLine($"item 22: the commit finished {stall.TotalSeconds:F2} s after the broker was back (outage 8 s plus the broker's restart)");

        Assert.True(outcome.Kind == OutcomeKind.Committed, $"{outcome.Kind}: {outcome.Reason}");
        Assert.Equal(["after the outage"], (await world.DrainRecoveringAsync()).DistinctBy(m => m.MessageId).Select(m => m.Body));
    }

    private static async Task RecordEffectAsync(InboxMessage message, NpgsqlConnection connection, NpgsqlTransaction transaction, CancellationToken cancellationToken)
    {
        await using var insert = new NpgsqlCommand("INSERT INTO effects (message_id, body) VALUES ($1, $2)", connection, transaction);
        insert.Parameters.AddWithValue(message.MessageId);
        insert.Parameters.AddWithValue(Encoding.UTF8.GetString(message.Body.Span));
        await insert.ExecuteNonQueryAsync(cancellationToken);
    }

    private static async Task<long> EffectCountAsync(MessagingWorld world)
    {
        await using var count = world.Database.CreateCommand("SELECT count(*) FROM effects");
        return (long)(await count.ExecuteScalarAsync())!;
    }

}
