namespace TwoPC.Participants.RabbitMq;

/// <summary>
/// Thrown by a handler (or by the typed consumer when a body does not deserialize) for a message that can never be
/// handled: the inbox consumer dead-letters it at once with this message as the reason, without retrying or
/// requeueing it. The handler's transaction is rolled back.
/// </summary>
public sealed class PoisonMessageException : Exception
{
    /// <summary>Creates the exception.</summary>
    public PoisonMessageException()
    {
    }

    /// <summary>Creates the exception with the reason.</summary>
    public PoisonMessageException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with the reason and the error that shows it.</summary>
    public PoisonMessageException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
