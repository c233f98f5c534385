namespace TwoPC.Participants.RabbitMq;

/// <summary>The inbox database could not be reached: no connection could be opened.</summary>
internal sealed class DatabaseUnavailableException(Exception innerException)
    : Exception("The inbox database cannot be reached: " + innerException.Message, innerException);
