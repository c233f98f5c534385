namespace TwoPC.Wal;

/// <summary>
/// The log directory is locked: another coordinator, in this process or another, has it open.
/// Two coordinators appending to one log would corrupt it, so the second one must not start.
/// </summary>
public sealed class TransactionLogLockedException : IOException
{
    /// <summary>Creates the exception for <paramref name="directory"/>.</summary>
    public TransactionLogLockedException(string directory)
        : base($"The transaction log directory '{directory}' is locked: another coordinator (in this or another process) holds it. Stop that coordinator, or give this one its own log directory.")
    {
        Directory = directory;
    }

    /// <summary>Creates the exception.</summary>
    public TransactionLogLockedException() : base("The transaction log directory is locked by another coordinator.")
    {
    }

    /// <summary>Creates the exception with a message and inner exception.</summary>
    public TransactionLogLockedException(string message, Exception innerException) : base(message, innerException)
    {
    }

    /// <summary>The locked directory, when known.</summary>
    public string? Directory { get; }
}
