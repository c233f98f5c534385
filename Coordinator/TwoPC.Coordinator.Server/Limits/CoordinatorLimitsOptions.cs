using System.ComponentModel.DataAnnotations;

namespace TwoPC.Coordinator.Server;

/// <summary>
/// How much one client may take of the coordinator (section <c>Coordinator:Limits</c>): connections, request sizes and
/// rates, branches per transaction and live transactions. Every limit is on by default and cannot be switched off (only
/// raised); validated when the host starts, a bad value fails the start with a message naming the setting.
/// </summary>
public sealed class CoordinatorLimitsOptions
{
    /// <summary>The configuration section.</summary>
    public const string SectionName = "Coordinator:Limits";

    /// <summary>
    /// The most TCP connections Kestrel keeps open at once (default 1,000); a connection beyond it is closed at once. Keep
    /// it well below the process's open-file limit (<c>ulimit -n</c>): the log, participant calls and the runtime need
    /// descriptors too, and an exhausted table takes the whole process down.
    /// </summary>
    [Range(1, 1_000_000, ErrorMessage = "Coordinator:Limits:MaxConcurrentConnections must be 1-1000000 (keep it well below the process's open-file limit).")]
    public int MaxConcurrentConnections { get; set; } = 1_000;

    /// <summary>How long a client may take to send a request's headers (default 10 s).</summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:10:00", ErrorMessage = "Coordinator:Limits:RequestHeadersTimeout must be between 00:00:01 and 00:10:00.")]
    public TimeSpan RequestHeadersTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How long an idle connection (before its first request, or between requests) is kept open (default 60 s).</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00", ErrorMessage = "Coordinator:Limits:KeepAliveTimeout must be between 00:00:01 and 01:00:00.")]
    public TimeSpan KeepAliveTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// The largest request body in bytes (default 64 KiB): every API request is a small JSON document; a larger body is
    /// answered 413 before it is read.
    /// </summary>
    [Range(1024, 64L * 1024 * 1024, ErrorMessage = "Coordinator:Limits:MaxRequestBodySize must be 1024-67108864 bytes.")]
    public long MaxRequestBodySize { get; set; } = 64 * 1024;

    /// <summary>
    /// The largest body of <c>POST /transactions/{id}/messages</c> in bytes (default 2 MiB): a message's own body may be
    /// up to 1 MiB of JSON (<see cref="Messaging.MaxBodyBytes"/>), plus its headers.
    /// </summary>
    [Range(1024, 64L * 1024 * 1024, ErrorMessage = "Coordinator:Limits:MaxMessageRequestBodySize must be 1024-67108864 bytes.")]
    public long MaxMessageRequestBodySize { get; set; } = 2 * 1024 * 1024;

    /// <summary>The slowest a request body may arrive, in bytes per second after <see cref="MinRequestBodyDataRateGracePeriod"/> (default 240, Kestrel's); slower is answered 408.</summary>
    [Range(1.0, 1_000_000_000.0, ErrorMessage = "Coordinator:Limits:MinRequestBodyDataRate must be at least 1 byte per second.")]
    public double MinRequestBodyDataRate { get; set; } = 240;

    /// <summary>How long a request body may arrive slower than <see cref="MinRequestBodyDataRate"/> before the server gives up (default 5 s; more than Kestrel's 1 s heartbeat).</summary>
    [Range(typeof(TimeSpan), "00:00:02", "00:10:00", ErrorMessage = "Coordinator:Limits:MinRequestBodyDataRateGracePeriod must be between 00:00:02 and 00:10:00.")]
    public TimeSpan MinRequestBodyDataRateGracePeriod { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// The most remote branches one transaction may register (default 64); one more is answered 422. Every branch is a
    /// participant call in each phase, and a rollback calls them all at once.
    /// </summary>
    [Range(1, 100_000, ErrorMessage = "Coordinator:Limits:MaxBranchesPerTransaction must be 1-100000.")]
    public int MaxBranchesPerTransaction { get; set; } = 64;

    /// <summary>
    /// The most transactions begun through the API and not yet ended, from all clients together (default 10,000); one
    /// more begin is answered 503 with <c>Retry-After</c>. An abandoned transaction holds its slot until its deadline.
    /// </summary>
    [Range(1, 10_000_000, ErrorMessage = "Coordinator:Limits:MaxLiveTransactions must be 1-10000000.")]
    public int MaxLiveTransactions { get; set; } = 10_000;

    /// <summary>
    /// The most live transactions of one client (default 1,000; the owner is the authenticated caller, every anonymous
    /// caller is one client): one client cannot take every slot of <see cref="MaxLiveTransactions"/>.
    /// </summary>
    [Range(1, 10_000_000, ErrorMessage = "Coordinator:Limits:MaxLiveTransactionsPerClient must be 1-10000000.")]
    public int MaxLiveTransactionsPerClient { get; set; } = 1_000;

    /// <summary>The <c>Retry-After</c> of a begin refused for <see cref="MaxLiveTransactions"/> (default 1 s).</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00", ErrorMessage = "Coordinator:Limits:LiveTransactionsRetryAfter must be between 00:00:01 and 01:00:00.")]
    public TimeSpan LiveTransactionsRetryAfter { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>The largest participant answer body read, in bytes: 64 KiB. A larger answer is the participant's error, not read.</summary>
    public const int MaxParticipantAnswerBytes = 64 * 1024;

    /// <summary>Connections open at once to one participant server (default 64).</summary>
    [Range(1, 100_000, ErrorMessage = "Coordinator:Limits:MaxParticipantConnectionsPerServer must be 1-100000.")]
    public int MaxParticipantConnectionsPerServer { get; set; } = 64;

    /// <summary>Participant calls in flight at once, all participants together (default 256); the rest wait their turn.</summary>
    [Range(1, 1_000_000, ErrorMessage = "Coordinator:Limits:MaxConcurrentParticipantCalls must be 1-1000000.")]
    public int MaxConcurrentParticipantCalls { get; set; } = 256;
}
