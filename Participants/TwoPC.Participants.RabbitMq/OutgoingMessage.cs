namespace TwoPC.Participants.RabbitMq;

/// <summary>A message staged in a global transaction, published when (and only when) it commits.</summary>
/// <param name="Exchange">The exchange to publish to (must exist when the branch prepares; "" is the default exchange).</param>
/// <param name="RoutingKey">The routing key.</param>
/// <param name="Body">The message body.</param>
/// <param name="Headers">Application headers, or <see langword="null"/>.</param>
/// <param name="ContentType">The content type, or <see langword="null"/>.</param>
/// <param name="Type">The message type (AMQP <c>type</c> property), or <see langword="null"/>.</param>
public sealed record OutgoingMessage(
    string Exchange,
    string RoutingKey,
    ReadOnlyMemory<byte> Body,
    IReadOnlyDictionary<string, string>? Headers = null,
    string? ContentType = null,
    string? Type = null);
