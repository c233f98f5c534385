namespace TwoPC.TestServers;

/// <summary>How <see cref="PostgresServer.StartAsync"/> configures a private PostgreSQL server.</summary>
public sealed class PostgresServerOptions
{
    /// <summary>
    /// <c>max_prepared_transactions</c>. Default 64. PostgreSQL's own default, 0, disables
    /// <c>PREPARE TRANSACTION</c> (SQLSTATE 55000) — set it to 0 to test that misconfiguration.
    /// </summary>
    public int MaxPreparedTransactions { get; init; } = 64;

    /// <summary><c>max_connections</c>. Default 200.</summary>
    public int MaxConnections { get; init; } = 200;

    /// <summary>
    /// <c>fsync</c>. Default true. <see cref="PostgresServer.RestartImmediateAsync"/> kills only the
    /// server processes, not the machine, so crash tests keep their data with fsync off too.
    /// </summary>
    public bool Fsync { get; init; } = true;

    /// <summary>Further postgresql.conf settings (name → value), applied last so they override the above.</summary>
    public IDictionary<string, string> Settings { get; } = new Dictionary<string, string>(StringComparer.Ordinal);

    /// <summary>
    /// Where the server's private directory (<c>pg-RANDOM</c>, holding the data directory, the log
    /// and the unix socket) is created. Default: <c>$TMPDIR/twopc-test-servers-USER</c>. Keep it
    /// short (unix socket paths are limited to 107 bytes) and, when running as root, searchable by
    /// the postgres account.
    /// </summary>
    public string? BaseDirectory { get; init; }

    /// <summary>
    /// The directory holding initdb, pg_ctl and postgres. Default: the environment variable
    /// <c>TWOPC_PG_BINDIR</c>, else found automatically (pg_config --bindir,
    /// /usr/lib/postgresql/*/bin, PATH), else installed with apt.
    /// </summary>
    public string? BinDirectory { get; init; }

    /// <summary>
    /// Whether a missing PostgreSQL may be installed with apt (needs root or password-less sudo).
    /// Default true; the environment variable <c>TWOPC_TEST_SERVERS_NO_INSTALL=1</c> also forbids it.
    /// </summary>
    public bool AllowInstall { get; init; } = true;

    /// <summary>How long the server may take to start (pg_ctl -w -t). Default 60 s.</summary>
    public TimeSpan StartupTimeout { get; init; } = TimeSpan.FromSeconds(60);
}
