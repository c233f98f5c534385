namespace TwoPC.TestServers;

/// <summary>
/// A private test server could not be installed, started, restarted or stopped. The message says
/// what was tried (binaries, command, port, directories) and ends with the tail of the server log.
/// </summary>
public sealed class TestServerException : Exception
{
    public TestServerException()
    {
    }

    public TestServerException(string message)
        : base(message)
    {
    }

    public TestServerException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
