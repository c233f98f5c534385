using System.Diagnostics;
using System.Text;
using Npgsql;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using RabbitMQ.Client.Exceptions;
using TwoPC.TestServers;

namespace TwoPC.Participants.RabbitMq.Tests.Infrastructure;

/// <summary>Smoke tests of the shared broker (and PostgreSQL server) from <see cref="RabbitMqFixture"/>.</summary>
[Collection(RabbitMqCollection.Name)]
public sealed class RabbitMqServerTests(RabbitMqFixture fixture)
{
    [Fact]
    public async Task Broker_listens_on_loopback_as_its_own_node()
    {
        var broker = fixture.Broker;

        Assert.Equal("127.0.0.1", broker.Host);
        Assert.InRange(broker.Port, 1, 65535);
        Assert.InRange(broker.DistributionPort, 1, 65535);
        Assert.NotEqual(broker.Port, broker.DistributionPort);
        Assert.Equal(new Uri($"amqp://guest:guest@127.0.0.1:{broker.Port}/"), broker.AmqpUri);
        Assert.StartsWith("twopc-", broker.NodeName, StringComparison.Ordinal);
        Assert.EndsWith("@localhost", broker.NodeName, StringComparison.Ordinal);
        Assert.StartsWith("3.", broker.Version, StringComparison.Ordinal);
        Assert.True(broker.IsRunning);
        Assert.True(Directory.Exists(broker.DataDirectory));
        Assert.True(File.Exists(broker.LogFile));

        // AMQP and Erlang distribution listen on 127.0.0.1 only (no 0.0.0.0, no IPv6 wildcard).
        Assert.Equal(["127.0.0.1"], Listeners.AddressesListeningOn(broker.Port));
        Assert.Equal(["127.0.0.1"], Listeners.AddressesListeningOn(broker.DistributionPort));

        await using var connection = await Amqp.ConnectAsync(broker);

        // The default cluster name is the node name with the machine's host name.
        Assert.StartsWith(broker.NodeName.Split('@')[0] + "@", Amqp.ServerProperty(connection, "cluster_name"), StringComparison.Ordinal);
        Assert.Equal(broker.Version, Amqp.ServerProperty(connection, "version"));
        Assert.Equal("RabbitMQ", Amqp.ServerProperty(connection, "product"));
    }

    [Fact]
    public async Task Publish_with_confirm_round_trips_through_a_quorum_queue()
    {
        await using var connection = await Amqp.ConnectAsync(fixture.Broker);
        await using var channel = await Amqp.ConfirmChannelAsync(connection);
        var queue = RabbitMqFixture.NewQueueName("round-trip");
        await Amqp.DeclareQuorumQueueAsync(channel, queue);

        // With confirmation tracking, the publish completes only once the broker confirmed it.
        await channel.BasicPublishAsync(string.Empty, queue, mandatory: true, Amqp.Persistent("m-1"), Encoding.UTF8.GetBytes("hello"));

        var message = await channel.BasicGetAsync(queue, autoAck: true);
        Assert.NotNull(message);
        Assert.Equal("hello", Encoding.UTF8.GetString(message.Body.Span));
        Assert.Equal("m-1", message.BasicProperties.MessageId);
        Assert.Null(await channel.BasicGetAsync(queue, autoAck: true));

        // Mandatory + confirms: an unroutable message is returned and the publish fails.
        var returned = await Assert.ThrowsAsync<PublishReturnException>(async () =>
            await channel.BasicPublishAsync(string.Empty, RabbitMqFixture.NewQueueName("nowhere"), mandatory: true, Amqp.Persistent("m-2"), Encoding.UTF8.GetBytes("lost")));
        Assert.Equal(312, returned.ReplyCode); // NO_ROUTE
    }

    [Fact]
    public async Task CloseAllConnectionsAsync_closes_client_connections_with_the_reason()
    {
        await using var connection = await Amqp.ConnectAsync(fixture.Broker);
        var shutdown = new TaskCompletionSource<ShutdownEventArgs>(TaskCreationOptions.RunContinuationsAsynchronously);
        connection.ConnectionShutdownAsync += (_, args) =>
        {
            shutdown.TrySetResult(args);
            return Task.CompletedTask;
        };
        Assert.True(connection.IsOpen);

        await fixture.Broker.CloseAllConnectionsAsync("twopc smoke test");

        var args = await shutdown.Task.WaitAsync(TimeSpan.FromSeconds(15));
        Assert.False(connection.IsOpen);
        Assert.Equal(ShutdownInitiator.Peer, args.Initiator);
        Assert.Equal(320, args.ReplyCode); // CONNECTION_FORCED
        Assert.Contains("twopc smoke test", args.ReplyText, StringComparison.Ordinal);

        // The broker itself keeps running.
        await using var again = await Amqp.ConnectAsync(fixture.Broker);
        Assert.True(again.IsOpen);
    }

    [Fact]
    public async Task Shared_postgres_server_is_up()
    {
        var connectionString = await fixture.CreateDatabaseAsync();

        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SHOW max_prepared_transactions", connection);
        Assert.Equal("64", await command.ExecuteScalarAsync());
    }
}

/// <summary>Tests that need a broker of their own: stop and start again, restart.</summary>
public sealed class RabbitMqServerRestartTests
{
    [Fact]
    public async Task Confirmed_message_survives_StopAsync_StartAgainAsync_and_RestartAsync()
    {
        await using var broker = await RabbitMqServer.StartAsync();
        var port = broker.Port;
        var queue = RabbitMqFixture.NewQueueName("durable");
        await using (var connection = await Amqp.ConnectAsync(broker))
        await using (var channel = await Amqp.ConfirmChannelAsync(connection))
        {
            await Amqp.DeclareQuorumQueueAsync(channel, queue);
            await channel.BasicPublishAsync(string.Empty, queue, mandatory: true, Amqp.Persistent("first"), Encoding.UTF8.GetBytes("1"));
            await channel.BasicPublishAsync(string.Empty, queue, mandatory: true, Amqp.Persistent("second"), Encoding.UTF8.GetBytes("2"));
        }

        await broker.StopAsync();

        Assert.False(broker.IsRunning);
        await Assert.ThrowsAsync<BrokerUnreachableException>(() => Amqp.ConnectAsync(broker));

        await broker.StartAgainAsync();

        Assert.True(broker.IsRunning);
        Assert.Equal(port, broker.Port);
        Assert.Equal("first", await Amqp.GetMessageIdAsync(broker, queue));

        await broker.RestartAsync();

        Assert.Equal(port, broker.Port);
        Assert.Equal("second", await Amqp.GetMessageIdAsync(broker, queue));
    }
}

/// <summary>Several brokers, failures and cleanup.</summary>
public sealed class RabbitMqServerLifecycleTests
{
    [Fact]
    public async Task Two_brokers_run_at_once_and_dispose_removes_only_their_own()
    {
        var starts = new[] { RabbitMqServer.StartAsync(), RabbitMqServer.StartAsync() };
        await using var first = await starts[0];
        await using var second = await starts[1];

        Assert.NotEqual(first.Port, second.Port);
        Assert.NotEqual(first.NodeName, second.NodeName);
        Assert.NotEqual(first.DataDirectory, second.DataDirectory);

        // Independent brokers: a queue declared on one does not exist on the other.
        var queue = RabbitMqFixture.NewQueueName("only-on-first");
        await using (var connection = await Amqp.ConnectAsync(first))
        await using (var channel = await Amqp.ConfirmChannelAsync(connection))
        {
            await Amqp.DeclareQuorumQueueAsync(channel, queue);
        }

        await using (var connection = await Amqp.ConnectAsync(second))
        await using (var channel = await connection.CreateChannelAsync())
        {
            var missing = await Assert.ThrowsAsync<OperationInterruptedException>(() => channel.QueueDeclarePassiveAsync(queue));
            Assert.Equal((ushort)404, missing.ShutdownReason?.ReplyCode);
        }

        // Disposing one kills that node fast and deletes its directory; the other and the shared epmd live on.
        var epmdBefore = ProcessesNamed("epmd");
        var stopwatch = Stopwatch.StartNew();
        await first.DisposeAsync();

        Assert.InRange(stopwatch.Elapsed, TimeSpan.Zero, TimeSpan.FromSeconds(15));
        Assert.False(Directory.Exists(first.ServerDirectory));
        Assert.False(first.IsRunning);
        await Assert.ThrowsAsync<BrokerUnreachableException>(() => Amqp.ConnectAsync(first));
        Assert.All(epmdBefore, pid => Assert.True(Directory.Exists($"/proc/{pid}"), $"epmd {pid} was killed"));
        await using var stillThere = await Amqp.ConnectAsync(second);
        Assert.True(stillThere.IsOpen);
    }

    [Fact]
    public async Task Startup_failure_explains_what_was_tried_and_shows_the_node_log()
    {
        var options = new RabbitMqServerOptions { Settings = { ["vm_memory_high_watermark.relative"] = "not-a-number" } };

        var exception = await Assert.ThrowsAsync<TestServerException>(() => RabbitMqServer.StartAsync(options));

        Assert.Contains("did not start", exception.Message, StringComparison.Ordinal);
        Assert.Contains("rabbitmq-server", exception.Message, StringComparison.Ordinal);
        Assert.Contains("node:      twopc-", exception.Message, StringComparison.Ordinal);
        Assert.Contains("127.0.0.1:", exception.Message, StringComparison.Ordinal);
        Assert.Contains("vm_memory_high_watermark", exception.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Wrong_sbin_directory_fails_with_a_clear_message()
    {
        var exception = await Assert.ThrowsAsync<TestServerException>(
            () => RabbitMqServer.StartAsync(new RabbitMqServerOptions { SbinDirectory = "/nonexistent/twopc/sbin" }));

        Assert.Contains("/nonexistent/twopc/sbin", exception.Message, StringComparison.Ordinal);
        Assert.Contains("rabbitmqctl", exception.Message, StringComparison.Ordinal);
    }

    private static List<int> ProcessesNamed(string name)
        => Directory.EnumerateDirectories("/proc")
            .Select(Path.GetFileName)
            .Where(entry => int.TryParse(entry, out _))
            .Where(entry => ReadComm(entry!) == name)
            .Select(entry => int.Parse(entry!, System.Globalization.CultureInfo.InvariantCulture))
            .ToList();

    private static string? ReadComm(string pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/comm").Trim();
        }
        catch (IOException)
        {
            return null;
        }
    }
}

internal static class Listeners
{
    /// <summary>The local addresses with a listening TCP socket on <paramref name="port"/>, from /proc/net/tcp and tcp6.</summary>
    public static List<string> AddressesListeningOn(int port)
    {
        const string Listen = "0A";
        var addresses = new List<string>();
        foreach (var file in new[] { "/proc/net/tcp", "/proc/net/tcp6" })
        {
            foreach (var line in File.ReadLines(file).Skip(1))
            {
                // "  sl  local_address rem_address   st ...", local_address = HEXADDR:HEXPORT
                var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                var local = fields[1].Split(':');
                if (fields[3] == Listen && Convert.ToInt32(local[1], 16) == port)
                {
                    addresses.Add(local[0] switch
                    {
                        "0100007F" => "127.0.0.1",
                        "00000000" => "0.0.0.0",
                        "00000000000000000000000001000000" => "::1",
                        "00000000000000000000000000000000" => "::",
                        var other => other,
                    });
                }
            }
        }

        return addresses;
    }
}

internal static class Amqp
{
    public static Task<IConnection> ConnectAsync(RabbitMqServer broker)
        => new ConnectionFactory
        {
            Uri = broker.AmqpUri,
            // Tests observe connection loss; recovery would hide it.
            AutomaticRecoveryEnabled = false,
            TopologyRecoveryEnabled = false,
            RequestedConnectionTimeout = TimeSpan.FromSeconds(10),
            ClientProvidedName = "twopc-smoke-tests",
        }.CreateConnectionAsync();

    public static Task<IChannel> ConfirmChannelAsync(IConnection connection)
        => connection.CreateChannelAsync(new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true));

    public static Task DeclareQuorumQueueAsync(IChannel channel, string queue)
        => channel.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false, arguments: new Dictionary<string, object?> { ["x-queue-type"] = "quorum" });

    public static BasicProperties Persistent(string messageId)
        => new() { Persistent = true, MessageId = messageId, ContentType = "text/plain" };

    public static string? ServerProperty(IConnection connection, string key)
        => connection.ServerProperties is { } properties && properties.TryGetValue(key, out var value) && value is byte[] bytes ? Encoding.UTF8.GetString(bytes) : null;

    /// <summary>Gets (and acks) one message, waiting for a queue that is still recovering after a restart.</summary>
    public static async Task<string?> GetMessageIdAsync(RabbitMqServer broker, string queue)
    {
        var stopwatch = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                await using var connection = await ConnectAsync(broker);
                await using var channel = await connection.CreateChannelAsync();
                var message = await channel.BasicGetAsync(queue, autoAck: true);
                if (message is not null || stopwatch.Elapsed > TimeSpan.FromSeconds(15))
                {
                    return message?.BasicProperties.MessageId;
                }
            }
            catch (OperationInterruptedException) when (stopwatch.Elapsed < TimeSpan.FromSeconds(15))
            {
                // The quorum queue's leader is not elected yet.
            }

            await Task.Delay(200);
        }
    }
}
