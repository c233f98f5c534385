namespace TwoPC.Participants;

/// <summary>
/// Thrown by a resource manager's phase-2 call that spent the call waiting for its resource to become reachable
/// (a broker or database connection that is down) and gave up when the call's token fired.
/// </summary>
/// <remarks>
/// The coordinator retries such a call after its base delay instead of its growing backoff: the resource
/// already waits for its own connection inside each call, so the next attempt goes out as soon as the
/// connection is back rather than up to <c>RetryMaxDelay</c> later.
/// </remarks>
public sealed class ResourceUnavailableException : Exception
{
    /// <summary>Creates the exception.</summary>
    public ResourceUnavailableException()
        : base("The resource is unreachable.")
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public ResourceUnavailableException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and the error that was seen.</summary>
    public ResourceUnavailableException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
