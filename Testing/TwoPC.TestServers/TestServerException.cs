namespace TwoPC.TestServers;

/// <summary>
/// A private test server could not be installed, started, restarted or stopped. The message says
/// what was tried (binaries, command, port, directories) and ends with the tail of the server log.
/// </summary>
public sealed class TestServerException : Exception
{
    /// <summary>Creates the exception.</summary>
    public TestServerException()
    {
    }

    /// <summary>Creates the exception with what was tried and what happened.</summary>
    public TestServerException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with what was tried and the error that stopped it.</summary>
    public TestServerException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
