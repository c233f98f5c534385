namespace TwoPC.Participants.RabbitMq;

/// <summary>
/// Handles one message type with exactly-once effects: <see cref="HandleAsync"/> runs inside the inbox transaction
/// (<see cref="InboxContext.Transaction"/>), which commits — and the message is acknowledged — only if it returns.
/// Register with <see cref="TwoPCConsumerServiceCollectionExtensions.AddTwoPCConsumer{TMessage, THandler}"/>; a new
/// handler is resolved from a new DI scope for every message (and every retry).
/// </summary>
/// <typeparam name="TMessage">The message type, deserialized from the body with System.Text.Json.</typeparam>
public interface IMessageHandler<in TMessage>
{
    /// <summary>
    /// Does the message's effect on <see cref="InboxContext.Connection"/> within <see cref="InboxContext.Transaction"/>.
    /// Throwing rolls the effect back; the message is retried, then requeued, then dead-lettered (see
    /// <see cref="TwoPCConsumerOptions"/>). Throw <see cref="PoisonMessageException"/> for a message that can never succeed.
    /// </summary>
    Task HandleAsync(TMessage message, InboxContext context, CancellationToken cancellationToken);
}
