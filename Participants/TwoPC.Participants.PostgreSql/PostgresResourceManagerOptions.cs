namespace TwoPC.Participants.PostgreSql;

/// <summary>Settings of a <see cref="PostgresResourceManager"/>.</summary>
public sealed class PostgresResourceManagerOptions
{
    /// <summary>Schema of the marker table (created if missing). Default <c>twopc</c>.</summary>
    public string MarkerSchema { get; set; } = "twopc";

    /// <summary>
    /// How long a marker row is kept after its branch was prepared. A marker tells "already committed" from
    /// "rolled back by someone else" when a commit is repeated after a crash, so keep it longer than the
    /// longest time a coordinator may stay down with unfinished phase 2. Default 24 hours.
    /// </summary>
    public TimeSpan MarkerRetention { get; set; } = TimeSpan.FromHours(24);

    /// <summary>At most this many expired markers are deleted per recovery pass (bounded batches). Default 5,000.</summary>
    public int MarkerCleanupBatchSize { get; set; } = 5_000;

    /// <summary>
    /// Bound every lock wait and statement of a branch by the time left until the global transaction's
    /// deadline (<c>SET LOCAL lock_timeout</c> / <c>statement_timeout</c>), so a distributed deadlock — two global
    /// transactions waiting on each other across databases, invisible to PostgreSQL's deadlock detector — ends
    /// with one side voting no. Default true.
    /// </summary>
    public bool BoundLockWaitsByDeadline { get; set; } = true;
}
