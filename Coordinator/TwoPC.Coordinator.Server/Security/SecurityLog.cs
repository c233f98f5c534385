namespace TwoPC.Coordinator.Server;

/// <summary>Authentication and authorization of the transaction API (event ids 6400-6419).</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 6400, Level = LogLevel.Information, Message = "Transaction API authentication: {Clients} API-key clients, {Participants} participants with keys, JWT bearer {Bearer}, anonymous access {AllowAnonymous}")]
    public static partial void AuthenticationConfigured(ILogger logger, int clients, int participants, bool bearer, bool allowAnonymous);

    [LoggerMessage(EventId = 6401, Level = LogLevel.Warning, Message = "Coordinator:Authentication:AllowAnonymous is on: callers without credentials may begin, decide and read transactions and register branches of participants without keys. Development on loopback only; turn it off and configure Coordinator:Clients, Authentication:Schemes:Bearer and Coordinator:Participants keys everywhere else")]
    public static partial void AnonymousAccessOn(ILogger logger);

    [LoggerMessage(EventId = 6402, Level = LogLevel.Warning, Message = "No credentials are configured (Coordinator:Clients, Authentication:Schemes:Bearer, Coordinator:Participants keys) and anonymous access is off: every transaction API call will be refused with 401")]
    public static partial void NoCredentialsConfigured(ILogger logger);

    [LoggerMessage(EventId = 6403, Level = LogLevel.Warning, Message = "{Scheme} credentials on {Path} refused: {Reason}")]
    public static partial void CredentialsRefused(ILogger logger, string scheme, string path, string reason);

    [LoggerMessage(EventId = 6404, Level = LogLevel.Warning, Message = "{Caller} refused on {Method} {Path}: {Rule}")]
    public static partial void CallerForbidden(ILogger logger, string caller, string method, string path, string rule);

    [LoggerMessage(EventId = 6405, Level = LogLevel.Warning, Message = "A prepared vote relayed with the commit of {TransactionId} was ignored: its participant signature does not hold for this transaction (the branch is asked by callback)")]
    public static partial void RelayedVoteIgnored(ILogger logger, string transactionId);
}
