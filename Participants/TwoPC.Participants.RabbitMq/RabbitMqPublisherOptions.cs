namespace TwoPC.Participants.RabbitMq;

/// <summary>Settings of a <see cref="RabbitMqResourceManager"/>.</summary>
public sealed class RabbitMqPublisherOptions
{
    /// <summary>Publisher confirms outstanding at once on one channel (bounded in-flight confirms). Default 256.</summary>
    public int MaxOutstandingConfirms { get; set; } = 256;

    /// <summary>Publishing channels kept open for concurrent commits. Default 16.</summary>
    public int Channels { get; set; } = 16;

    /// <summary>
    /// How long an exchange found to exist is trusted before prepare checks it again (a passive declare
    /// costs a channel round trip, too much for every transaction). Default 30 s.
    /// </summary>
    public TimeSpan ExchangeCheckInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// The durable queue where messages that could not be delivered (unroutable: returned; or nacked) are
    /// parked for an operator, with headers saying why. Declared at start. Default <c>twopc.parked</c>.
    /// </summary>
    public string ParkingQueue { get; set; } = "twopc.parked";

    /// <summary>
    /// The longest pause between two attempts to (re)connect to the broker; attempts start at 100 ms and back
    /// off to this. A commit waiting for the broker publishes as soon as the connection is back. Default 1 s.
    /// </summary>
    public TimeSpan ReconnectDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Test hook awaited before each message is handed to the channel (the crash tests kill the process there).</summary>
    internal Func<string, ValueTask>? BeforePublish { get; set; }
}
