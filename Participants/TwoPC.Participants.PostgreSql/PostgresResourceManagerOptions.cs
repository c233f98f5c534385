namespace TwoPC.Participants.PostgreSql;

/// <summary>Settings of a <see cref="PostgresResourceManager"/>.</summary>
public sealed class PostgresResourceManagerOptions
{
    /// <summary>
    /// Schema of the marker table that versions before the transaction-id recovery data wrote (<c>&lt;schema&gt;.markers</c>).
    /// Nothing writes it any more and it is never created; when it exists, a row in it is read as "committed" for a
    /// decision logged by such a version (whose recovery data has no transaction id). Default <c>twopc</c>.
    /// </summary>
    public string MarkerSchema { get; set; } = "twopc";

    /// <summary>
    /// Bound every lock wait and statement of a branch by the time left until the global transaction's
    /// deadline (<c>SET LOCAL lock_timeout</c> / <c>statement_timeout</c>), so a distributed deadlock — two global
    /// transactions waiting on each other across databases, invisible to PostgreSQL's deadlock detector — ends
    /// with one side voting no. Default true.
    /// </summary>
    public bool BoundLockWaitsByDeadline { get; set; } = true;
}
