namespace TwoPC.Participants.PostgreSql;

/// <summary>The PostgreSQL server is not configured for two-phase commit (for example <c>max_prepared_transactions = 0</c>).</summary>
public sealed class PostgresConfigurationException : Exception
{
    /// <summary>Creates the exception.</summary>
    public PostgresConfigurationException() { }

    /// <summary>Creates the exception with a message naming the setting and how to change it.</summary>
    public PostgresConfigurationException(string message) : base(message) { }

    /// <summary>Creates the exception with an inner exception.</summary>
    public PostgresConfigurationException(string message, Exception innerException) : base(message, innerException) { }
}
