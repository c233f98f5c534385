using System.Text;
using Dapper;
using Microsoft.Extensions.Logging;
using Npgsql;
using RabbitMQ.Client;
using TwoPC.Participants.RabbitMq;

namespace TwoPC.Verify;

/// <summary>
/// The consumer under test, in a process of its own so that the checker can SIGKILL it: the exactly-once inbox
/// consumer records each transfer message into <c>consumed</c> (no unique constraint) in the same database
/// transaction as its inbox row, and acknowledges after commit.
/// </summary>
internal static class BankConsumer
{
    public static async Task<int> RunAsync(string database, Uri amqp, CancellationToken cancellationToken)
    {
        using var loggers = LoggerFactory.Create(b => b.AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace).SetMinimumLevel(LogLevel.Warning));
        await using var dataSource = NpgsqlDataSource.Create(database);
        var options = new InboxConsumerOptions
        {
            Queue = Bank.Queue,
            ConsumerName = "twopc-verify",
            InboxSchema = Bank.Schema, // dropped with the bank at the start of a run, so a new log's reused XIDs start clean
            DatabaseRetryMaxDelay = TimeSpan.FromSeconds(1),
        };
        await using var consumer = await InboxConsumer.StartAsync(new ConnectionFactory { Uri = amqp }, dataSource, options, async (message, connection, transaction, ct) =>
        {
            var transfer = Encoding.UTF8.GetString(message.Body.Span);
            await connection.ExecuteAsync(new CommandDefinition($"INSERT INTO {Bank.Schema}.consumed (transfer_id) VALUES (@transfer)", new { transfer }, transaction, cancellationToken: ct));
        }, loggers, cancellationToken);
        Console.Out.WriteLine("ready consumer");
        await Task.Delay(Timeout.Infinite, cancellationToken).ContinueWith(_ => { }, TaskScheduler.Default);
        return 0;
    }
}
