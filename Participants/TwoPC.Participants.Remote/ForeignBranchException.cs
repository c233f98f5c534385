namespace TwoPC.Participants.Remote;

/// <summary>A callback named a branch the local database holds for someone else (another database or user): answered 409, never acted on.</summary>
internal sealed class ForeignBranchException(string message, Exception innerException) : Exception(message, innerException);
