using System.Diagnostics;
using System.Text;
using Microsoft.Extensions.Logging;
using Npgsql;
using RabbitMQ.Client;
using TwoPC.Participants.PostgreSql;
using TwoPC.Participants.RabbitMq;
using TwoPC.Protocol;
using TwoPC.Transactions;
using TwoPC.Wal;

namespace TwoPC.CrashHost;

/// <summary>
/// The RabbitMQ crash scenarios.
/// <list type="bullet">
/// <item><c>mq-run --log DIR --db CONN --amqp URI --exchange EX --messages N [--crash-step STEP] [--read-only]
/// [--crash-before-publish K --queue Q]</c>: one global transaction (an UPDATE of <c>items</c> row 1, or with
/// <c>--read-only</c> only a SELECT, and N staged messages), frozen at the step for the SIGKILL; with
/// <c>--crash-before-publish</c> it freezes before handing message K to the broker, once messages 0..K-1 are in queue Q.
/// Prints <c>TX id</c> when the transaction begins.</item>
/// <item><c>mq-recover --log DIR --db CONN --amqp URI [--status ID]</c>: a new coordinator on the same log finishes
/// what it finds, then (with <c>--status</c>) prints <c>STATUS state</c> for that transaction.</item>
/// <item><c>inbox-consume --db CONN --amqp URI --queue Q [--crash-after-commit K]</c>: an inbox consumer recording each
/// message's effect in <c>effects</c>; at the K-th message it freezes after the database commit and before the ack.</item>
/// </list>
/// </summary>
internal static class RabbitMqHost
{
    public static bool Handles(string[] args) => args.Length > 0 && args[0] is "mq-run" or "mq-recover" or "inbox-consume";

    public static async Task<int> RunAsync(string[] args, ILoggerFactory loggerFactory)
    {
        var factory = new ConnectionFactory { Uri = new Uri(NamedArguments.Value(args, "--amqp")), AutomaticRecoveryEnabled = true };
        await using var database = NpgsqlDataSource.Create(NamedArguments.Value(args, "--db"));
        return args[0] == "inbox-consume"
            ? await ConsumeAsync(args, factory, database, loggerFactory)
            : await CoordinateAsync(args, factory, database, loggerFactory);
    }

    private static async Task<int> CoordinateAsync(string[] args, ConnectionFactory factory, NpgsqlDataSource database, ILoggerFactory loggerFactory)
    {
        using var postgres = await PostgresResourceManager.CreateAsync("mq-db", database, loggerFactory: loggerFactory);
        var publisher = new RabbitMqPublisherOptions();
        if (NamedArguments.Optional(args, "--crash-before-publish") is { } k)
        {
            var index = int.Parse(k, System.Globalization.CultureInfo.InvariantCulture);
            var queue = NamedArguments.Value(args, "--queue");
            publisher.BeforePublish = async messageId =>
            {
                if (!messageId.EndsWith("." + k, StringComparison.Ordinal))
                {
                    return;
                }

                // Freeze only once the messages before it are confirmed and in the queue, so the crash splits the commit.
                await using var probe = await factory.CreateConnectionAsync();
                await using var channel = await probe.CreateChannelAsync();
                while ((await channel.QueueDeclarePassiveAsync(queue)).MessageCount < index)
                {
                    await Task.Delay(50);
                }

                Output.Line($"CRASHPOINT BeforePublish {messageId}");
                Thread.Sleep(Timeout.Infinite);
            };
        }

        await using var rabbit = await RabbitMqResourceManager.CreateAsync("mq-events", factory, publisher, loggerFactory: loggerFactory);
        var options = new TransactionCoordinatorOptions
        {
            NodeId = "mq-crash",

            // --lrc: the last-resource commit (the PostgreSQL branch, enlisted first, decides; the staged messages ride in its marker).
            LastResourceCommit = args.Contains("--lrc"),
            OrphanSafetyInterval = TimeSpan.FromMilliseconds(300),
            RecoveryInterval = TimeSpan.FromMilliseconds(250),
            RetryBaseDelay = TimeSpan.FromMilliseconds(20),
            RetryMaxDelay = TimeSpan.FromMilliseconds(200),
        };
        if (NamedArguments.Optional(args, "--crash-step") is { } step)
        {
            options.StepHook = new CrashPoint(Enum.Parse<ProtocolStep>(step, ignoreCase: true), 1, 0).OnStepAsync;
        }

        var coordinator = new TransactionCoordinator(options, new FileTransactionLog(new FileTransactionLogOptions { Directory = NamedArguments.Value(args, "--log") }), [postgres, rabbit], loggerFactory);
        await coordinator.StartAsync();
        Output.Line($"STARTED {coordinator.Epoch}");
        try
        {
            if (args[0] == "mq-recover")
            {
                var elapsed = Stopwatch.StartNew();
                while (coordinator.RecoveringTransactions > 0)
                {
                    if (elapsed.Elapsed > TimeSpan.FromSeconds(30))
                    {
                        Output.Line($"INDOUBT recovering={coordinator.RecoveringTransactions}");
                        return 3;
                    }

                    await Task.Delay(100);
                }

                Output.Line("RECOVERED");
                if (NamedArguments.Optional(args, "--status") is { } status)
                {
                    Output.Line($"STATUS {coordinator.GetStatus(GlobalTransactionId.Parse(status)).State}");
                }

                return 0;
            }

            var tx = coordinator.Begin();
            Output.Line($"TX {tx.Id}");
            var branch = await postgres.EnlistAsync(tx);
            var sql = args.Contains("--read-only") ? "SELECT value FROM items WHERE id = 1" : "UPDATE items SET value = value + 1 WHERE id = 1";
            await using (var update = new NpgsqlCommand(sql, branch.Connection, branch.Transaction))
            {
                await update.ExecuteNonQueryAsync();
            }

            var events = rabbit.Enlist(tx);
            var count = int.Parse(NamedArguments.Value(args, "--messages"), System.Globalization.CultureInfo.InvariantCulture);
            for (var i = 0; i < count; i++)
            {
                events.Publish(NamedArguments.Value(args, "--exchange"), "order.placed", Encoding.UTF8.GetBytes($"message {i}"));
            }

            var outcome = await tx.CommitAsync();
            Output.Line($"OUTCOME {tx.Id} {outcome.Kind}");
            Output.Line("DONE");
            return 0;
        }
        finally
        {
            await coordinator.DisposeAsync();
        }
    }

    private static async Task<int> ConsumeAsync(string[] args, ConnectionFactory factory, NpgsqlDataSource database, ILoggerFactory loggerFactory)
    {
        await using var connection = await factory.CreateConnectionAsync();
        var crashAt = NamedArguments.Optional(args, "--crash-after-commit") is { } k ? int.Parse(k, System.Globalization.CultureInfo.InvariantCulture) : 0;
        var handled = 0;
        var options = new InboxConsumerOptions
        {
            Queue = NamedArguments.Value(args, "--queue"),
            Concurrency = 1,
            AfterCommit = message =>
            {
                if (Interlocked.Increment(ref handled) == crashAt)
                {
                    Output.Line($"CRASHPOINT AfterCommitBeforeAck {message.MessageId}");
                    Thread.Sleep(Timeout.Infinite);
                }

                return ValueTask.CompletedTask;
            },
        };
        await using var consumer = await InboxConsumer.StartAsync(connection, database, options, async (message, db, transaction, ct) =>
        {
            await using var insert = new NpgsqlCommand("INSERT INTO effects (message_id, body) VALUES ($1, $2)", db, transaction);
            insert.Parameters.AddWithValue(message.MessageId);
            insert.Parameters.AddWithValue(Encoding.UTF8.GetString(message.Body.Span));
            await insert.ExecuteNonQueryAsync(ct);
        }, loggerFactory);
        Output.Line("CONSUMING");
        await Task.Delay(Timeout.Infinite);
        return 0;
    }
}
