using Microsoft.Extensions.Logging;

namespace TwoPC.Participants.RabbitMq;

/// <summary>Log messages of the typed consumers (event ids 5120-5139).</summary>
internal static partial class ConsumerLog
{
    [LoggerMessage(EventId = 5120, Level = LogLevel.Warning, Message = "{Handler} failed on a message from {Queue} (attempt {Attempt} next); retrying in {Delay}")]
    public static partial void HandlerRetrying(this ILogger logger, Exception exception, string handler, string queue, int attempt, TimeSpan delay);

    [LoggerMessage(EventId = 5121, Level = LogLevel.Warning, Message = "Rolling back the failed attempt on message {MessageId} from {Queue} failed")]
    public static partial void SavepointRollbackFailed(this ILogger logger, Exception exception, string queue, string messageId);
}
