namespace TwoPC.Wal;

/// <summary>
/// The log was written by a coordinator with another node id. Transaction ids, XIDs and PostgreSQL markers
/// carry the node id, so a renamed coordinator could neither recognise its own branches nor have them
/// recognised; it must not take over the log. Start it with the node id the log names, or drain the log
/// under that id first.
/// </summary>
public sealed class TransactionLogNodeMismatchException : IOException
{
    /// <summary>Creates the exception for a log at <paramref name="directory"/> written by <paramref name="logNodeId"/>.</summary>
    public TransactionLogNodeMismatchException(string directory, string logNodeId, string nodeId)
        : base($"The transaction log at '{directory}' was written by coordinator node '{logNodeId}', but this coordinator is node '{nodeId}'. A log belongs to one node id: start this coordinator with NodeId '{logNodeId}', or let node '{logNodeId}' finish its transactions and give node '{nodeId}' its own log directory.")
    {
        Directory = directory;
        LogNodeId = logNodeId;
        NodeId = nodeId;
    }

    /// <summary>Creates the exception.</summary>
    public TransactionLogNodeMismatchException() : base("The transaction log was written by another coordinator node.")
    {
    }

    /// <summary>Creates the exception with a message and inner exception.</summary>
    public TransactionLogNodeMismatchException(string message, Exception innerException) : base(message, innerException)
    {
    }

    /// <summary>The log directory, when known.</summary>
    public string? Directory { get; }

    /// <summary>The node id the log records.</summary>
    public string? LogNodeId { get; }

    /// <summary>The node id of the coordinator that tried to open it.</summary>
    public string? NodeId { get; }
}
