using Microsoft.AspNetCore.Http;

namespace TwoPC.Participants.Remote;

/// <summary>A branch request cannot join its global transaction; <see cref="StatusCode"/> is what to answer the caller.</summary>
public sealed class RemoteParticipantException : Exception
{
    /// <summary>Creates the exception.</summary>
    public RemoteParticipantException() { }

    /// <summary>Creates the exception.</summary>
    public RemoteParticipantException(string message) : base(message) { }

    /// <summary>Creates the exception.</summary>
    public RemoteParticipantException(string message, Exception innerException) : base(message, innerException) { }

    /// <summary>Creates the exception with the status to answer.</summary>
    public RemoteParticipantException(int statusCode, string title, string message, Exception? innerException = null)
        : base(message, innerException)
    {
        StatusCode = statusCode;
        Title = title;
    }

    /// <summary>The HTTP status for the caller: 400 missing or malformed transaction id, 404 unknown, 409 no longer active, 503 coordinator unreachable.</summary>
    public int StatusCode { get; } = StatusCodes.Status500InternalServerError;

    /// <summary>A short title for problem details.</summary>
    public string Title { get; } = "Cannot join the transaction";

    /// <summary>The RFC 7807 answer.</summary>
    public IResult ToProblem() => Results.Problem(statusCode: StatusCode, title: Title, detail: Message);
}
