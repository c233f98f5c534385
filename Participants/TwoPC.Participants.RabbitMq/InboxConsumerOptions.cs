namespace TwoPC.Participants.RabbitMq;

/// <summary>Settings of an <see cref="InboxConsumer"/>.</summary>
public sealed class InboxConsumerOptions
{
    /// <summary>The queue to consume (required).</summary>
    public string Queue { get; set; } = string.Empty;

    /// <summary>The consumer's name in the inbox (messages are deduplicated per consumer); defaults to <see cref="Queue"/>.</summary>
    public string? ConsumerName { get; set; }

    /// <summary>Unacknowledged messages the broker may hand over at once. Default 32.</summary>
    public ushort Prefetch { get; set; } = 32;

    /// <summary>Messages handled in parallel. Default 4.</summary>
    public ushort Concurrency { get; set; } = 4;

    /// <summary>
    /// After this many failed deliveries a message is dead-lettered with the last error. Default 5. Only failures
    /// of the handler count (not an unreachable database). The consumer counts them itself per message id, so the
    /// limit holds on every queue type; on a quorum queue the broker's <c>x-delivery-count</c> is honoured too
    /// (it also counts deliveries to a consumer that crashed).
    /// </summary>
    public int DeliveryLimit { get; set; } = 5;

    /// <summary>Schema of the inbox table (created if missing). Default <c>twopc</c>.</summary>
    public string InboxSchema { get; set; } = "twopc";

    /// <summary>How long an inbox row is kept; must exceed the longest redelivery horizon. Default 7 days.</summary>
    public TimeSpan InboxRetention { get; set; } = TimeSpan.FromDays(7);

    /// <summary>At most this many expired inbox rows are deleted per cleanup round. Default 5,000.</summary>
    public int CleanupBatchSize { get; set; } = 5_000;

    /// <summary>How often expired inbox rows are cleaned up. Default 1 minute.</summary>
    public TimeSpan CleanupInterval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// The longest pause between two attempts to handle a message while its database is unreachable (connection
    /// refused, server shutting down or restarting, too many connections). Such failures are not the handler's:
    /// the delivery is held and retried with backoff from 100 ms up to this, without counting towards
    /// <see cref="DeliveryLimit"/>. Default 5 s.
    /// </summary>
    public TimeSpan DatabaseRetryMaxDelay { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How long a delivery whose handler failed (below <see cref="DeliveryLimit"/>) is held before it is requeued: a
    /// delayed redelivery, so a failure that needs time to clear (a lock, a service restarting) gets it. The held
    /// delivery keeps its prefetch slot meanwhile. Default zero (requeued at once).
    /// </summary>
    public TimeSpan RedeliveryDelay { get; set; }

    /// <summary>
    /// Called each time consuming starts on a connection (the first time, and again after every reconnect), once the
    /// topology is declared and the broker has registered the consumer: a readiness signal. It must not throw.
    /// </summary>
    public Action? OnConsuming { get; set; }

    /// <summary>Declares the consumer's topology on every (re)connection before consuming (the typed consumers' topology options).</summary>
    internal Func<RabbitMQ.Client.IChannel, CancellationToken, Task>? DeclareTopology { get; set; }

    /// <summary>Test hook between the database commit and the ack (the crash tests kill the consumer there).</summary>
    internal Func<InboxMessage, ValueTask>? AfterCommit { get; set; }
}
