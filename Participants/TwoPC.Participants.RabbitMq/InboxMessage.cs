namespace TwoPC.Participants.RabbitMq;

/// <summary>A delivered message, as the handler sees it.</summary>
/// <param name="MessageId">The publisher's stable message id (the inbox key).</param>
/// <param name="Exchange">The exchange it was published to.</param>
/// <param name="RoutingKey">Its routing key.</param>
/// <param name="Body">A copy of the body (valid after the handler returns).</param>
/// <param name="Type">The AMQP <c>type</c> property.</param>
/// <param name="Headers">Application headers; byte-array values decoded as UTF-8 strings.</param>
/// <param name="DeliveryCount">How many deliveries of it failed before (0 on the first delivery).</param>
public sealed record InboxMessage(string MessageId, string Exchange, string RoutingKey, ReadOnlyMemory<byte> Body, string? Type, IReadOnlyDictionary<string, string> Headers, long DeliveryCount);
