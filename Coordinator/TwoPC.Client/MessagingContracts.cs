using System.Text.Json;

namespace TwoPC.Client;

/// <summary>Body of <c>POST /transactions/{id}/messages</c>: a message published to RabbitMQ if and only if the transaction commits.</summary>
/// <param name="Exchange">A declared, durable exchange.</param>
/// <param name="RoutingKey">The routing key.</param>
/// <param name="Body">The message body, any JSON value (published as <c>application/json</c>).</param>
/// <param name="Type">The message's type property, for example <c>OrderPlaced</c>.</param>
/// <param name="Headers">Application headers.</param>
internal sealed record PublishMessageRequest(string? Exchange, string? RoutingKey, JsonElement? Body, string? Type = null, IReadOnlyDictionary<string, string>? Headers = null);

/// <summary>A message staged on the transaction's publishing branch.</summary>
/// <param name="Xid">The publishing branch.</param>
/// <param name="MessageId">The message id consumers deduplicate on (stable across redeliveries and coordinator restarts).</param>
public sealed record PublishMessageResponse(string Xid, string MessageId);
