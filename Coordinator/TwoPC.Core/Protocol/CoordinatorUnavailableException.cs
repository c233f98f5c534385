namespace TwoPC.Protocol;

/// <summary>
/// The coordinator cannot take a decision now: it has not finished starting (recovery), or it is stopping or stopped.
/// Nothing was done; the same call may succeed later (a server answers 503). An <see cref="InvalidOperationException"/>,
/// as this state always was.
/// </summary>
public sealed class CoordinatorUnavailableException : InvalidOperationException
{
    /// <summary>Creates the exception.</summary>
    public CoordinatorUnavailableException() : base("The coordinator is not running.") { }

    /// <summary>Creates the exception with a message saying which state the coordinator is in.</summary>
    public CoordinatorUnavailableException(string message) : base(message) { }

    /// <summary>Creates the exception with a message and a cause.</summary>
    public CoordinatorUnavailableException(string message, Exception innerException) : base(message, innerException) { }
}
