namespace TwoPC.TestServers;

/// <summary>How <see cref="RabbitMqServer.StartAsync"/> configures a private RabbitMQ node.</summary>
public sealed class RabbitMqServerOptions
{
    /// <summary>
    /// Further rabbitmq.conf settings (key → value, new-style sysctl format, e.g.
    /// <c>["vm_memory_high_watermark.relative"] = "0.6"</c>), written after the defaults so they
    /// override them. The listeners, node name and directories come from the environment and are
    /// not set here.
    /// </summary>
    public IDictionary<string, string> Settings { get; } = new Dictionary<string, string>(StringComparer.Ordinal);

    /// <summary>
    /// Plugins to enable (e.g. <c>rabbitmq_management</c>, which then also listens on a loopback
    /// port of its own choosing unless configured). Default: none, which starts fastest.
    /// </summary>
    public IList<string> Plugins { get; } = [];

    /// <summary>
    /// Where the node's private directory (<c>rmq-RANDOM</c>, holding the data, the logs, the
    /// configuration and the Erlang cookie) is created. Default: <c>$TMPDIR/twopc-test-servers-USER</c>.
    /// When running as root it must be searchable by the rabbitmq account.
    /// </summary>
    public string? BaseDirectory { get; init; }

    /// <summary>
    /// The directory holding the real <c>rabbitmq-server</c> and <c>rabbitmqctl</c> scripts (not
    /// Debian's /usr/sbin wrappers, which switch to the rabbitmq account and force its
    /// directories). Default: the environment variable <c>TWOPC_RABBITMQ_SBINDIR</c>, else found
    /// automatically (/usr/lib/rabbitmq/bin, PATH), else installed with apt.
    /// </summary>
    public string? SbinDirectory { get; init; }

    /// <summary>
    /// Whether a missing RabbitMQ may be installed with apt (needs root or password-less sudo).
    /// Default true; the environment variable <c>TWOPC_TEST_SERVERS_NO_INSTALL=1</c> also forbids it.
    /// </summary>
    public bool AllowInstall { get; init; } = true;

    /// <summary>How long the node may take to start until it accepts AMQP connections. Default 60 s.</summary>
    public TimeSpan StartupTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>How long a graceful stop (<see cref="RabbitMqServer.StopAsync"/>) may take before <c>rabbitmqctl stop</c> is tried. Default 60 s.</summary>
    public TimeSpan StopTimeout { get; init; } = TimeSpan.FromSeconds(60);
}
