using System.Text.Json;
using RabbitMQ.Client;
using TwoPC.Participants.RabbitMq;
using TwoPC.Protocol;

namespace TwoPC.Samples.Readme;

/// <summary>README "RabbitMQ" and the TwoPC.Participants.RabbitMq package README.</summary>
public static class RabbitMqSnippets
{
    /// <summary>A message body.</summary>
    public sealed record OrderPlaced(Guid OrderId, string Sku);

    /// <summary>README.md, section "RabbitMQ: publish on commit, exactly-once effects on consume".</summary>
    public static async Task<TransactionOutcome> PublishAsync(RabbitMqResourceManager events, GlobalTransaction tx, OrderPlaced orderPlaced)
    {
        #region readme
        // using System.Text.Json; using RabbitMQ.Client; using TwoPC.Participants.RabbitMq;
        // once: var events = await RabbitMqResourceManager.CreateAsync("events", new ConnectionFactory { Uri = new("amqp://localhost") });
        // in a transaction, next to a PostgreSQL branch:
        var outbox = events.Enlist(tx);
        outbox.Publish("orders", "order.placed", JsonSerializer.SerializeToUtf8Bytes(orderPlaced));
        var outcome = await tx.CommitAsync();   // published (persistent, mandatory, confirmed) only if everything commits
        #endregion
        return outcome;
    }

    /// <summary>Participants/TwoPC.Participants.RabbitMq/README.md.</summary>
    public static async Task PackageAsync(GlobalTransaction tx, OrderPlaced orderPlaced)
    {
        #region package
        // using System.Text.Json; using RabbitMQ.Client; using TwoPC.Participants.RabbitMq;
        await using var events = await RabbitMqResourceManager.CreateAsync("events", new ConnectionFactory { Uri = new("amqp://localhost") });
        // register events with the coordinator, then in a transaction, next to a PostgreSQL branch:
        events.Enlist(tx).Publish("orders", "order.placed", JsonSerializer.SerializeToUtf8Bytes(orderPlaced));
        await tx.CommitAsync();   // published only if everything commits
        #endregion
    }
}
