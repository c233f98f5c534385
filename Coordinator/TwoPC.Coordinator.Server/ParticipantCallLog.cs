namespace TwoPC.Coordinator.Server;

/// <summary>Calls to remote participants and the protections around them (event ids 6220-6249).</summary>
internal static partial class ParticipantCallLog
{
    [LoggerMessage(EventId = 6220, Level = LogLevel.Warning, Message = "Call to participant '{Participant}' at {Target} failed: {Error}")]
    public static partial void CallFailed(ILogger logger, string participant, string target, string error);

    [LoggerMessage(EventId = 6221, Level = LogLevel.Warning, Message = "Participant '{Participant}' answered {Target} with {Status}")]
    public static partial void ErrorAnswer(ILogger logger, string participant, string target, int status);

    [LoggerMessage(EventId = 6222, Level = LogLevel.Warning, Message = "Participant '{Participant}' answered {Target} with a redirect ({Status}) to {Location}; not followed")]
    public static partial void RedirectNotFollowed(ILogger logger, string participant, string target, int status, string location);

    [LoggerMessage(EventId = 6223, Level = LogLevel.Warning, Message = "Call to participant '{Participant}' at {Target} refused before sending: {Reason}")]
    public static partial void CallRefused(ILogger logger, string participant, string target, string reason);

    [LoggerMessage(EventId = 6224, Level = LogLevel.Warning, Message = "Registration of a branch of {TransactionId} under '{Participant}' with callback URL {CallbackUrl} refused: {Reason}")]
    public static partial void RegistrationRefused(ILogger logger, string transactionId, string participant, string callbackUrl, string reason);

    [LoggerMessage(EventId = 6230, Level = LogLevel.Warning, Message = "Coordinator:AllowUnauthenticatedCallbacks is true: participants configured without a key ({Participants}) get unsigned callbacks that anyone on the network could forge. Development only.")]
    public static partial void UnauthenticatedCallbacksAllowed(ILogger logger, string participants);

    [LoggerMessage(EventId = 6231, Level = LogLevel.Warning, Message = "Coordinator:AllowUnconfiguredParticipants is true: branches may be registered under any name with a callback URL of an allowed origin ({Origins}), and their callbacks are unsigned. Development only.")]
    public static partial void UnconfiguredParticipantsAllowed(ILogger logger, string origins);

    [LoggerMessage(EventId = 6232, Level = LogLevel.Information, Message = "Remote participants configured: {Participants}; at most {MaxCalls} concurrent participant calls, {MaxConnections} connections per participant server")]
    public static partial void ParticipantsConfigured(ILogger logger, string participants, int maxCalls, int maxConnections);
}
