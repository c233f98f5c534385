namespace TwoPC.Participants.PostgreSql;

/// <summary>Settings of a <see cref="PostgresResourceManager"/>.</summary>
public sealed class PostgresResourceManagerOptions
{
    /// <summary>
    /// Schema of the commit-marker table of the last-resource commit (<c>&lt;schema&gt;.commit_markers</c>, created on first
    /// use), and of the marker table that versions before the transaction-id recovery data wrote (<c>&lt;schema&gt;.markers</c>).
    /// Nothing writes it any more and it is never created; when it exists, a row in it is read as "committed" for a
    /// decision logged by such a version (whose recovery data has no transaction id). Default <c>twopc</c>.
    /// </summary>
    public string MarkerSchema { get; set; } = "twopc";

    /// <summary>
    /// How long an aborted marker (a recovery fence) is kept in <c>&lt;schema&gt;.commit_markers</c> before it is purged.
    /// It must outlive every transaction that could still try to commit with a marker: longer than the coordinator's
    /// <c>MaxTimeout</c> plus any clock difference. Default one day.
    /// </summary>
    public TimeSpan FenceRetention { get; set; } = TimeSpan.FromDays(1);

    /// <summary>
    /// Whether a branch bounds its lock waits and statements with <c>SET LOCAL lock_timeout</c> / <c>statement_timeout</c>
    /// set to the time left until the global transaction's deadline — one extra round trip per branch. Some bound is
    /// always needed: a distributed deadlock (two global transactions waiting on each other across databases) is invisible
    /// to PostgreSQL's deadlock detector.
    /// <list type="bullet">
    /// <item><see langword="null"/> (default): only where no coordinator runs in this process
    /// (<see cref="PostgresResourceManager.BeginBranchAsync"/>, a remote participant). A branch from
    /// <see cref="PostgresResourceManager.EnlistAsync"/> is bounded by the coordinator's timeout reaper instead, at no cost:
    /// at the deadline it rolls the transaction back and ends a session still busy in a statement with
    /// <c>pg_terminate_backend</c>, so the statement fails and the locks are released.</item>
    /// <item><see langword="true"/>: every branch (a lock wait then fails cleanly with 55P03 and the pooled connection
    /// survives, at one round trip per branch).</item>
    /// <item><see langword="false"/>: never (a remote participant then relies on the coordinator's rollback callback).</item>
    /// </list>
    /// </summary>
    public bool? BoundLockWaitsByDeadline { get; set; }
}
