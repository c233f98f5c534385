namespace TwoPC.Participants.RabbitMq;

/// <summary>An undeliverable message could not be parked either; the commit is retried (the parking only).</summary>
public sealed class ParkingFailedException : Exception
{
    /// <summary>Creates the exception.</summary>
    public ParkingFailedException() { }

    /// <summary>Creates the exception.</summary>
    public ParkingFailedException(string message) : base(message) { }

    /// <summary>Creates the exception.</summary>
    public ParkingFailedException(string message, Exception innerException) : base(message, innerException) { }
}
