namespace TwoPC.Participants.PostgreSql;

/// <summary>
/// PostgreSQL cannot tell (yet) whether a branch's commit took effect: a one-phase <c>COMMIT</c> whose answer was lost
/// and whose transaction did not finish, or could not be asked about, in time; or a branch whose transaction is still
/// being finished by another session. Phase 2 asks again; a one-phase commit reports the outcome as unknown.
/// </summary>
public sealed class PostgresOutcomeUnknownException : Exception
{
    /// <summary>Creates the exception.</summary>
    public PostgresOutcomeUnknownException() { }

    /// <summary>Creates the exception with a message naming the branch and its transaction id.</summary>
    public PostgresOutcomeUnknownException(string message) : base(message) { }

    /// <summary>Creates the exception with an inner exception.</summary>
    public PostgresOutcomeUnknownException(string message, Exception innerException) : base(message, innerException) { }
}
