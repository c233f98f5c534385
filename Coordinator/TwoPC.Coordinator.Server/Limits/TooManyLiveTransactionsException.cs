namespace TwoPC.Coordinator.Server;

/// <summary>
/// A begin refused because <see cref="CoordinatorLimitsOptions.MaxLiveTransactions"/> or
/// <see cref="CoordinatorLimitsOptions.MaxLiveTransactionsPerClient"/> is reached (answered 503 with <c>Retry-After</c>).
/// Nothing was begun.
/// </summary>
public sealed class TooManyLiveTransactionsException : Exception
{
    /// <summary>Creates the exception.</summary>
    public TooManyLiveTransactionsException() : base("Too many live transactions.") { }

    /// <summary>Creates the exception with a message.</summary>
    public TooManyLiveTransactionsException(string message) : base(message) { }

    /// <summary>Creates the exception with a message and a cause.</summary>
    public TooManyLiveTransactionsException(string message, Exception innerException) : base(message, innerException) { }

    /// <summary>Creates the exception for a refusal: which limit, and when to ask again.</summary>
    public TooManyLiveTransactionsException(string message, bool perClient, TimeSpan retryAfter) : base(message)
    {
        PerClient = perClient;
        RetryAfter = retryAfter;
    }

    /// <summary>Whether the caller's own limit refused (else the coordinator's limit for all clients).</summary>
    public bool PerClient { get; }

    /// <summary>When to ask again.</summary>
    public TimeSpan RetryAfter { get; } = TimeSpan.FromSeconds(1);
}
