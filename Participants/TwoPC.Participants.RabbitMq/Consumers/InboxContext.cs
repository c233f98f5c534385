using Npgsql;

namespace TwoPC.Participants.RabbitMq;

/// <summary>What a typed handler gets besides the message: the inbox transaction and the delivery's details.</summary>
public sealed class InboxContext
{
    internal InboxContext(InboxMessage message, NpgsqlConnection connection, NpgsqlTransaction transaction)
    {
        Message = message;
        Connection = connection;
        Transaction = transaction;
    }

    /// <summary>The open connection of the inbox transaction (pass it to Dapper or an EF Core context).</summary>
    public NpgsqlConnection Connection { get; }

    /// <summary>The inbox transaction: the message's id is claimed in it; it commits only if the handler returns.</summary>
    public NpgsqlTransaction Transaction { get; }

    /// <summary>The message as delivered (raw body, exchange, routing key, type).</summary>
    public InboxMessage Message { get; }

    /// <summary>The publisher's stable message id (the inbox key).</summary>
    public string MessageId => Message.MessageId;

    /// <summary>Application headers; byte-array values decoded as UTF-8.</summary>
    public IReadOnlyDictionary<string, string> Headers => Message.Headers;

    /// <summary>How many deliveries of this message failed before this one (0 on the first delivery).</summary>
    public long RedeliveryCount => Message.DeliveryCount;

    /// <summary>The attempt within this delivery, from 1 (in-process retries: <see cref="TwoPCConsumerOptions.RetryAttempts"/>).</summary>
    public int Attempt { get; internal set; } = 1;
}
