using System.Text;
using Npgsql;
using TwoPC.Participants.RabbitMq.Tests.Infrastructure;
using TwoPC.Protocol;
using TwoPC.TestServers;
using TwoPC.Transactions;

namespace TwoPC.Participants.RabbitMq.Tests;

[Collection("rabbitmq")]
public sealed class PublishingTests(RabbitMqFixture fixture)
{
    [Fact]
    public async Task Commit_publishes_each_message_exactly_once_persistent_with_stable_ids()
    {
        await using var world = await MessagingWorld.CreateAsync(fixture);
        var tx = world.Coordinator.Begin();
        var db = await world.Postgres.EnlistAsync(tx);
        var events = world.Rabbit.Enlist(tx);
        await using (var update = new NpgsqlCommand("UPDATE items SET value = 1 WHERE id = 1", db.Connection, db.Transaction))
        {
            await update.ExecuteNonQueryAsync();
        }

        for (var i = 0; i < 3; i++)
        {
            events.Publish(world.Exchange, "order.placed", Encoding.UTF8.GetBytes($"order {i}"), new Dictionary<string, string> { ["tenant"] = "t1" });
        }

        Assert.Empty(await world.DrainAsync());
        var outcome = await tx.CommitAsync();

        Assert.Equal(OutcomeKind.Committed, outcome.Kind);
        var messages = await world.DrainAsync();
        Assert.Equal(["order 0", "order 1", "order 2"], messages.Select(m => m.Body));
        Assert.Equal([.. Enumerable.Range(0, 3).Select(i => RabbitMqResourceManager.MessageId(events.Xid, i))], messages.Select(m => m.MessageId));
        Assert.All(messages, m => Assert.True(m.Persistent));
        Assert.Equal("t1", Encoding.UTF8.GetString((byte[])messages[0].Headers!["tenant"]!));
        Assert.Equal(1, await world.ValueAsync(1));
    }

    [Fact]
    public async Task Rollback_publishes_nothing()
    {
        await using var world = await MessagingWorld.CreateAsync(fixture);
        var tx = world.Coordinator.Begin();
        var db = await world.Postgres.EnlistAsync(tx);
        world.Rabbit.Enlist(tx).Publish(world.Exchange, "order.placed", "x"u8.ToArray());
        await using (var update = new NpgsqlCommand("UPDATE items SET value = 1 WHERE id = 1", db.Connection, db.Transaction))
        {
            await update.ExecuteNonQueryAsync();
        }

        Assert.Equal(OutcomeKind.RolledBack, (await tx.RollbackAsync()).Kind);
        Assert.Empty(await world.DrainAsync());
        Assert.Equal(0, await world.ValueAsync(1));
    }

    [Fact]
    public async Task A_no_vote_elsewhere_publishes_nothing()
    {
        await using var world = await MessagingWorld.CreateAsync(fixture);
        await using (var setup = world.Database.CreateCommand("CREATE TABLE once (id int, CONSTRAINT u UNIQUE (id) DEFERRABLE INITIALLY DEFERRED); INSERT INTO once VALUES (1)"))
        {
            await setup.ExecuteNonQueryAsync();
        }

        var tx = world.Coordinator.Begin();
        var db = await world.Postgres.EnlistAsync(tx);
        world.Rabbit.Enlist(tx).Publish(world.Exchange, "order.placed", "x"u8.ToArray());
        await using (var insert = new NpgsqlCommand("INSERT INTO once VALUES (1)", db.Connection, db.Transaction))
        {
            await insert.ExecuteNonQueryAsync();
        }

        var outcome = await tx.CommitAsync();
        Assert.Equal(OutcomeKind.RolledBack, outcome.Kind);
        Assert.Contains("23505", outcome.Reason, StringComparison.Ordinal);
        Assert.Empty(await world.DrainAsync());
    }

    [Fact]
    public async Task A_missing_exchange_is_a_no_vote()
    {
        await using var world = await MessagingWorld.CreateAsync(fixture);
        var tx = world.Coordinator.Begin();
        var db = await world.Postgres.EnlistAsync(tx);
        world.Rabbit.Enlist(tx).Publish("no-such-exchange", "order.placed", "x"u8.ToArray());
        await using (var update = new NpgsqlCommand("UPDATE items SET value = 1 WHERE id = 1", db.Connection, db.Transaction))
        {
            await update.ExecuteNonQueryAsync();
        }

        var outcome = await tx.CommitAsync();
        Assert.Equal(OutcomeKind.RolledBack, outcome.Kind);
        Assert.Contains("exchange 'no-such-exchange' does not exist", outcome.Reason, StringComparison.Ordinal);
        Assert.Equal(0, await world.ValueAsync(1));
    }

    [Fact]
    public async Task An_unroutable_message_is_reported_as_a_heuristic_hazard_and_parked_not_lost()
    {
        await using var world = await MessagingWorld.CreateAsync(fixture);
        await world.DrainAsync(world.Rabbit.Options.ParkingQueue);
        var tx = world.Coordinator.Begin();
        var db = await world.Postgres.EnlistAsync(tx);
        var events = world.Rabbit.Enlist(tx);
        events.Publish(world.Exchange, "order.placed", "routable"u8.ToArray());
        events.Publish(world.Exchange, "nobody.listens", "unroutable"u8.ToArray());
        await using (var update = new NpgsqlCommand("UPDATE items SET value = 1 WHERE id = 1", db.Connection, db.Transaction))
        {
            await update.ExecuteNonQueryAsync();
        }

        var outcome = await tx.CommitAsync();

        Assert.Equal(OutcomeKind.HeuristicHazard, outcome.Kind);
        Assert.Single(world.Coordinator.GetHeuristics());
        Assert.Equal(["routable"], (await world.DrainAsync()).Select(m => m.Body));
        var parked = Assert.Single(await world.DrainAsync(world.Rabbit.Options.ParkingQueue));
        Assert.Equal("unroutable", parked.Body);
        Assert.Equal(RabbitMqResourceManager.MessageId(events.Xid, 1), parked.MessageId);
        Assert.Contains("unroutable", Encoding.UTF8.GetString((byte[])parked.Headers![RabbitMqResourceManager.ParkedReasonHeader]!), StringComparison.Ordinal);
        Assert.Equal(1, await world.ValueAsync(1));
    }

    [Fact]
    public async Task A_connection_forcibly_closed_before_publishing_still_publishes_everything()
    {
        RabbitMqServer? broker = null;
        var closed = false;
        await using var world = await MessagingWorld.CreateAsync(fixture, configure: o => o.StepHook = async (step, _, _) =>
        {
            if (step is ProtocolStep.DecisionLogged or ProtocolStep.AfterMarkerCommit && !closed)
            {
                closed = true;
                await broker!.CloseAllConnectionsAsync("test: forced close before publishing");
            }
        });
        broker = world.Broker;

        var tx = world.Coordinator.Begin();
        var db = await world.Postgres.EnlistAsync(tx);
        var events = world.Rabbit.Enlist(tx);
        events.Publish(world.Exchange, "order.placed", "a"u8.ToArray());
        events.Publish(world.Exchange, "order.placed", "b"u8.ToArray());
        await using (var update = new NpgsqlCommand("UPDATE items SET value = 1 WHERE id = 1", db.Connection, db.Transaction))
        {
            await update.ExecuteNonQueryAsync();
        }

        var outcome = await tx.CommitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        Assert.True(closed);
        Assert.Equal(OutcomeKind.Committed, outcome.Kind);

        // At least once: a retried publish may duplicate; the ids say which message it is.
        await Task.Delay(500);
        var received = await world.DrainRecoveringAsync();
        Assert.Equal(["a", "b"], received.DistinctBy(m => m.MessageId).Select(m => m.Body).Order());
    }

    [Fact]
    public async Task The_broker_stopped_and_restarted_during_publishing_loses_nothing()
    {
        await using var broker = await RabbitMqServer.StartAsync();
        Task? restart = null;
        await using var world = await MessagingWorld.CreateAsync(fixture, broker, o => o.StepHook = async (step, _, _) =>
        {
            if (step is ProtocolStep.DecisionLogged or ProtocolStep.AfterMarkerCommit && restart is null)
            {
                await broker.StopAsync();
                restart = Task.Run(async () =>
                {
                    await Task.Delay(1000);
                    await broker.StartAgainAsync();
                });
            }
        });

        var tx = world.Coordinator.Begin();
        var db = await world.Postgres.EnlistAsync(tx);
        var events = world.Rabbit.Enlist(tx);
        events.Publish(world.Exchange, "order.placed", "kept"u8.ToArray());
        await using (var update = new NpgsqlCommand("UPDATE items SET value = 1 WHERE id = 1", db.Connection, db.Transaction))
        {
            await update.ExecuteNonQueryAsync();
        }

        var outcome = await tx.CommitAsync().WaitAsync(TimeSpan.FromSeconds(90));
        await restart!;
        Assert.Equal(OutcomeKind.Committed, outcome.Kind);
        var received = await world.DrainRecoveringAsync();
        Assert.Equal(["kept"], received.DistinctBy(m => m.MessageId).Select(m => m.Body));
    }
}
