namespace TwoPC.Hosting;

/// <summary>Where the coordinator's decisions are logged (<c>TwoPC:Log:Kind</c>).</summary>
public enum TwoPCLogKind
{
    /// <summary>The file write-ahead log in <c>TwoPC:LogDirectory</c>: one coordinator node (the default).</summary>
    File,

    /// <summary>
    /// A PostgreSQL database shared by several coordinator nodes: each holds a lease, and a live node takes over a node
    /// whose lease expired (high availability). Needs <see cref="TwoPCLogOptions.ConnectionString"/>.
    /// </summary>
    PostgreSql,
}

/// <summary>The <c>TwoPC:Log</c> section: which transaction log, and the shared log's settings.</summary>
public sealed class TwoPCLogOptions
{
    /// <summary>Which log. Default <see cref="TwoPCLogKind.File"/>.</summary>
    public TwoPCLogKind Kind { get; set; } = TwoPCLogKind.File;

    /// <summary>With <see cref="TwoPCLogKind.PostgreSql"/>: the connection string of the shared log's database (required).</summary>
    public string? ConnectionString { get; set; }

    /// <summary>With <see cref="TwoPCLogKind.PostgreSql"/>: the schema of the log's tables, created on start. Default <c>twopc</c>.</summary>
    public string Schema { get; set; } = "twopc";

    /// <summary>
    /// With <see cref="TwoPCLogKind.PostgreSql"/>: how long a node's lease lasts without renewal; a node silent for longer
    /// is taken over by a live one. Default 10 s.
    /// </summary>
    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>With <see cref="TwoPCLogKind.PostgreSql"/>: how often a node renews its lease (less than half the lease). Default 3 s.</summary>
    public TimeSpan RenewInterval { get; set; } = TimeSpan.FromSeconds(3);
}
