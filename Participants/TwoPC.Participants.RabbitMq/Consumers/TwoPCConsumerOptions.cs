using System.Text.Json;
using Npgsql;
using RabbitMQ.Client;

namespace TwoPC.Participants.RabbitMq;

/// <summary>Settings of one typed consumer (<see cref="TwoPCConsumerServiceCollectionExtensions.AddTwoPCConsumer{TMessage, THandler}"/>).</summary>
public sealed class TwoPCConsumerOptions
{
    /// <summary>The queue consumed (the first argument of <c>AddTwoPCConsumer</c>).</summary>
    public string Queue { get; set; } = string.Empty;

    /// <summary>
    /// The broker. The consumer opens its own connection from it (copied, not modified) in the background and re-opens
    /// it after every loss. When <see langword="null"/>, a <see cref="RabbitMQ.Client.ConnectionFactory"/> registered
    /// in DI is used.
    /// </summary>
    public ConnectionFactory? ConnectionFactory { get; set; }

    /// <summary>The inbox database. When <see langword="null"/>, the <see cref="NpgsqlDataSource"/> registered in DI is used.</summary>
    public Func<IServiceProvider, NpgsqlDataSource>? DataSource { get; set; }

    /// <summary>
    /// When set, the consumer declares on every (re)connection a durable exchange of this name, the queue as a quorum
    /// queue wired to the dead-letter exchange, one binding per <see cref="RoutingKeys"/> entry, and the dead-letter
    /// exchange and queue (<see cref="RabbitMqTopology.DeclareConsumerQueueAsync"/>). When <see langword="null"/>,
    /// the queue must exist.
    /// </summary>
    public string? Exchange { get; set; }

    /// <summary>The type of <see cref="Exchange"/>. Default <c>topic</c>.</summary>
    public string ExchangeType { get; set; } = RabbitMQ.Client.ExchangeType.Topic;

    /// <summary>The routing keys the queue is bound to <see cref="Exchange"/> with; none means <c>#</c> (everything).</summary>
    public IList<string> RoutingKeys { get; } = [];

    /// <summary>How bodies are deserialized. Default: <see cref="JsonSerializerDefaults.Web"/> (camelCase, case-insensitive).</summary>
    public JsonSerializerOptions JsonSerializerOptions { get; set; } = new(JsonSerializerDefaults.Web);

    /// <summary>
    /// In-process retries of a failing handler within one delivery (each in a new DI scope, its writes rolled back to
    /// a savepoint), with exponential backoff from <see cref="RetryDelay"/>. After them the delivery fails: it is
    /// requeued (after <see cref="InboxConsumerOptions.RedeliveryDelay"/>) until <see cref="InboxConsumerOptions.DeliveryLimit"/>
    /// failed deliveries, then dead-lettered with the last error. Default 2; 0 turns retries (and the savepoints) off.
    /// </summary>
    public int RetryAttempts { get; set; } = 2;

    /// <summary>The first retry's delay (then doubled, with jitter). Default 200 ms.</summary>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>The inbox consumer's settings: prefetch, concurrency, delivery limit, redelivery delay, inbox schema and retention. Its <see cref="InboxConsumerOptions.Queue"/> is set from <see cref="Queue"/>.</summary>
    public InboxConsumerOptions Inbox { get; } = new();
}
