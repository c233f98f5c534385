using Microsoft.Extensions.Logging;
using TwoPC.Transactions;

namespace TwoPC.Participants.Remote;

/// <summary>Remote participant logs (event ids 7000-7099).</summary>
internal static partial class RemoteParticipantLog
{
    [LoggerMessage(EventId = 7000, Level = LogLevel.Information, Message = "Remote participant '{Name}' ready: coordinator {CoordinatorUrl}, callbacks at {CallbackUrl}")]
    public static partial void Ready(this ILogger logger, string name, Uri coordinatorUrl, Uri callbackUrl);

    [LoggerMessage(EventId = 7001, Level = LogLevel.Debug, Message = "Joined transaction {TransactionId} as branch {Xid}")]
    public static partial void Joined(this ILogger logger, string transactionId, Xid xid);

    [LoggerMessage(EventId = 7002, Level = LogLevel.Warning, Message = "Could not join transaction {TransactionId}: {Reason}")]
    public static partial void JoinRefused(this ILogger logger, string transactionId, string reason);

    [LoggerMessage(EventId = 7003, Level = LogLevel.Debug, Message = "Branch {Xid} voted {Vote} at the end of its request")]
    public static partial void Voted(this ILogger logger, Xid xid, Participants.VoteKind vote);

    [LoggerMessage(EventId = 7004, Level = LogLevel.Information, Message = "Branch {Xid} rolled back: its request ended with status {StatusCode} or an exception")]
    public static partial void WorkFailed(this ILogger logger, Xid xid, int statusCode);

    [LoggerMessage(EventId = 7005, Level = LogLevel.Debug, Message = "Coordinator asked {Action} of {Xid}: {Answer}")]
    public static partial void Callback(this ILogger logger, string action, Xid xid, string answer);

    [LoggerMessage(EventId = 7006, Level = LogLevel.Warning, Message = "Branch {Xid}: the prepare outcome is unknown (the connection was lost during PREPARE); the coordinator resolves it by XID")]
    public static partial void PrepareUnknown(this ILogger logger, Exception exception, Xid xid);

    [LoggerMessage(EventId = 7007, Level = LogLevel.Warning, Message = "Callback {Path} refused: its signature is {Verdict} (key id {KeyId})")]
    public static partial void CallbackRefused(this ILogger logger, string path, string verdict, string keyId);

    [LoggerMessage(EventId = 7015, Level = LogLevel.Warning, Message = "Remote participant '{Name}' runs without a key (TwoPC:Participant:AllowUnauthenticatedCallbacks=true): anyone who can reach its callbacks can prepare, commit or roll back its branches, and its calls to the coordinator are unsigned. Development only.")]
    public static partial void UnauthenticatedCallbacks(this ILogger logger, string name);

    [LoggerMessage(EventId = 7016, Level = LogLevel.Warning, Message = "Callback {Action} of {Xid} refused: {Reason}")]
    public static partial void CallbackNotOurs(this ILogger logger, string action, Xid xid, string reason);

    [LoggerMessage(EventId = 7008, Level = LogLevel.Information, Message = "Branch {Xid} rolled back by the coordinator while its request was working: session {Pid} terminated from another connection")]
    public static partial void SessionTerminated(this ILogger logger, Xid xid, int pid);

    [LoggerMessage(EventId = 7010, Level = LogLevel.Information, Message = "Recovery of '{Name}': branch {Xid} is {State} at the coordinator; {Action}")]
    public static partial void Recovered(this ILogger logger, string name, Xid xid, string state, string action);

    [LoggerMessage(EventId = 7011, Level = LogLevel.Warning, Message = "Recovery pass of '{Name}' failed; retried in the next pass")]
    public static partial void RecoveryFailed(this ILogger logger, Exception exception, string name);

    [LoggerMessage(EventId = 7012, Level = LogLevel.Warning, Message = "Recovery of '{Name}': could not resolve branch {Xid}; retried in the next pass")]
    public static partial void RecoveryBranchFailed(this ILogger logger, Exception exception, string name, Xid xid);

    [LoggerMessage(EventId = 7014, Level = LogLevel.Warning, Message = "Recovery of '{Name}': branch {Xid} belongs to coordinator node {BranchNode}, but the coordinator at {CoordinatorUrl} is node {CoordinatorNode}; left alone, never presumed aborted: node {BranchNode}'s coordinator (on its own log) or an operator must commit or roll it back")]
    public static partial void RecoveryOtherNode(this ILogger logger, string name, Xid xid, string branchNode, Uri coordinatorUrl, string coordinatorNode);

    [LoggerMessage(EventId = 7013, Level = LogLevel.Warning, Message = "Recovery of '{Name}': branch {Xid} has a heuristic outcome at the coordinator; left for an operator")]
    public static partial void RecoveryHeuristic(this ILogger logger, string name, Xid xid);

    [LoggerMessage(EventId = 7017, Level = LogLevel.Debug, Message = "Branch {Xid}: the coordinator did not take its Yes vote reported early ({Reason}); it asks by the prepare callback")]
    public static partial void PreparedNotReported(this ILogger logger, Xid xid, string reason);

    [LoggerMessage(EventId = 7018, Level = LogLevel.Information, Message = "The coordinator at {CoordinatorUrl} does not take Yes votes reported early (it answered 404 without problem details: an older version); this participant stops reporting them and answers the prepare callbacks")]
    public static partial void PreparedReportsUnsupported(this ILogger logger, Uri coordinatorUrl);
}
