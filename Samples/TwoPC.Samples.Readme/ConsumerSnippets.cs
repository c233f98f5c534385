using Dapper;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Npgsql;
using RabbitMQ.Client;
using TwoPC.Participants.RabbitMq;

namespace TwoPC.Samples.Readme;

/// <summary>README "RabbitMQ", typed consumers (run by Tests/TwoPC.Participants.RabbitMq.Tests/Consumers/ReadmeTypedConsumerTests.cs).</summary>
public static class ConsumerSnippets
{
    #region handler
    public sealed record OrderPlaced(string OrderId, string Sku, int Quantity);

    public sealed class OrderPlacedHandler : IMessageHandler<OrderPlaced>
    {
        // Runs inside the inbox transaction: it commits, and the message is acknowledged, only if this returns.
        public Task HandleAsync(OrderPlaced message, InboxContext context, CancellationToken cancellationToken) =>
            context.Connection.ExecuteAsync(new CommandDefinition(
                "INSERT INTO shipments (order_id, sku, quantity) VALUES (@OrderId, @Sku, @Quantity)",
                message, context.Transaction, cancellationToken: cancellationToken));
    }
    #endregion

    /// <summary>Registers the typed consumer of the README.</summary>
    public static void Register(HostApplicationBuilder builder, string connectionString, Uri brokerUri)
    {
        ArgumentNullException.ThrowIfNull(builder);
        #region registration
        builder.Services.AddSingleton(_ => NpgsqlDataSource.Create(connectionString));   // the inbox database
        builder.Services.AddTwoPCConsumer<OrderPlaced, OrderPlacedHandler>("shipping.order-placed", consumer =>
        {
            consumer.ConnectionFactory = new ConnectionFactory { Uri = brokerUri };
            consumer.Exchange = "orders";   // declares the exchange, a quorum queue bound to it, dead-lettering
            consumer.RoutingKeys.Add("order.placed");
        });
        #endregion
    }
}
