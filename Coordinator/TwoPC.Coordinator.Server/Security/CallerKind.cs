namespace TwoPC.Coordinator.Server.Security;

/// <summary>Who is calling the transaction API, as far as its credentials say.</summary>
internal enum CallerKind
{
    /// <summary>No credentials; only served with <c>Coordinator:Authentication:AllowAnonymous</c> on loopback.</summary>
    Anonymous,

    /// <summary>A client (API key or bearer token): begins transactions and decides only its own.</summary>
    Client,

    /// <summary>A configured participant (request signed with its key): registers branches under its own name, reads status.</summary>
    Participant,

    /// <summary>The operator's admin key (<c>X-Api-Key</c>): reads the status of any transaction.</summary>
    Admin,
}
