namespace TwoPC.Samples;

/// <summary>
/// The event the orders service publishes (exchange <see cref="Exchange"/>, routing key <see cref="RoutingKey"/>,
/// AMQP type <see cref="Type"/>) when — and only when — a checkout commits. JSON, camelCase.
/// </summary>
internal sealed record OrderPlaced(string OrderId, string CustomerId, string Sku, int Quantity, decimal Amount)
{
    /// <summary>The topic exchange the event goes to.</summary>
    public const string Exchange = "orders";

    /// <summary>Its routing key.</summary>
    public const string RoutingKey = "order.placed";

    /// <summary>The AMQP <c>type</c> property.</summary>
    public const string Type = "OrderPlaced";
}
