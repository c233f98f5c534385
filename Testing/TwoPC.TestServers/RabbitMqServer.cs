using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using TwoPC.TestServers.Internal;

namespace TwoPC.TestServers;

/// <summary>
/// A private, throw-away RabbitMQ node for integration tests, the demo and CI: its own node name
/// (<c>twopc-RANDOM@localhost</c>), data, logs, configuration and Erlang cookie in a private
/// directory, AMQP and Erlang distribution listening only on 127.0.0.1 on free ports, no plugins
/// unless asked for. The default user guest/guest may connect (from loopback only). RabbitMQ is
/// found on the machine or installed with apt (see <see cref="RabbitMqServerOptions.SbinDirectory"/>).
/// When the process runs as root, the node runs as the <c>rabbitmq</c> account the package creates.
/// </summary>
/// <remarks>
/// Dispose it to kill the node and delete its directory. Nodes still running when the process
/// exits are killed from AppDomain.ProcessExit; those of a killed process are killed and deleted
/// by the next <see cref="StartAsync"/> that uses the same base directory. The Erlang port mapper
/// (epmd, port 4369) is shared by every Erlang node on the machine and is never stopped.
/// </remarks>
public sealed partial class RabbitMqServer : IAsyncDisposable, IProcessExitCleanup
{
    /// <summary>Environment variable naming the directory of the real rabbitmq-server and rabbitmqctl scripts (skips discovery and installation).</summary>
    public const string SbinDirectoryEnvironmentVariable = RabbitMqBinaries.SbinDirEnvironmentVariable;

    /// <summary>Set to 1 to keep the private directory (data, logs) after dispose or a failed start, for debugging.</summary>
    public const string KeepEnvironmentVariable = PostgresServer.KeepEnvironmentVariable;

    /// <summary>The default user (administrator of vhost "/"; RabbitMQ lets it connect from loopback only).</summary>
    public const string UserName = "guest";

    /// <summary>The default user's password.</summary>
    public const string Password = "guest";

    private const string DirectoryPrefix = "rmq";
    private const int MaxStartAttempts = 3;
    private const int LogTailLines = 40;
    private static readonly TimeSpan CtlTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan LaunchTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan ExitWait = TimeSpan.FromSeconds(15);

    private readonly RabbitMqBinaries _binaries;
    private readonly ServerUser _user;
    private readonly SemaphoreSlim _lifecycle = new(1, 1);
    private int _launcherPid;
    private int _disposed;

    private RabbitMqServer(RabbitMqServerOptions options, RabbitMqBinaries binaries, ServerUser user, string serverDirectory)
    {
        Options = options;
        _binaries = binaries;
        _user = user;
        ServerDirectory = serverDirectory;
        NodeName = "twopc-" + Path.GetFileName(serverDirectory)[(DirectoryPrefix.Length + 1)..] + "@localhost";
        DataDirectory = Path.Combine(serverDirectory, "data");
        LogDirectory = Path.Combine(serverDirectory, "log");
        LogFile = Path.Combine(LogDirectory, "rabbit.log");
        ConsoleLogFile = Path.Combine(LogDirectory, "console.log");
        Version = binaries.PackageVersion ?? "unknown";
    }

    /// <summary>Always 127.0.0.1: the node listens on loopback only.</summary>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Performance", "CA1822:Mark members as static", Justification = "One of the server's connection facts, read from the instance like Port.")]
    public string Host => "127.0.0.1";

    /// <summary>The AMQP 0-9-1 port on 127.0.0.1.</summary>
    public int Port { get; private set; }

    /// <summary>The Erlang distribution port on 127.0.0.1 (rabbitmqctl talks to the node through it).</summary>
    public int DistributionPort { get; private set; }

    /// <summary>The Erlang node name, <c>twopc-RANDOM@localhost</c> (for <c>rabbitmqctl -n</c>).</summary>
    public string NodeName { get; }

    /// <summary><c>amqp://guest:guest@127.0.0.1:PORT/</c> (vhost "/"), for <c>ConnectionFactory.Uri</c>.</summary>
    public Uri AmqpUri => new(string.Create(CultureInfo.InvariantCulture, $"amqp://{UserName}:{Password}@{Host}:{Port}/"));

    /// <summary>The private directory holding data, logs, configuration and the Erlang cookie (home/.erlang.cookie).</summary>
    public string ServerDirectory { get; }

    /// <summary>RABBITMQ_MNESIA_BASE: the node's data (Mnesia, message stores, quorum queue logs) lives in <c>DataDirectory/NodeName</c>.</summary>
    public string DataDirectory { get; }

    /// <summary>RABBITMQ_LOG_BASE: holds <see cref="LogFile"/> and <see cref="ConsoleLogFile"/>.</summary>
    public string LogDirectory { get; }

    /// <summary>The node's log file.</summary>
    public string LogFile { get; }

    /// <summary>The node's standard output and error (early boot failures show up here).</summary>
    public string ConsoleLogFile { get; }

    /// <summary>The directory of the rabbitmq-server and rabbitmqctl scripts used.</summary>
    public string SbinDirectory => _binaries.SbinDirectory;

    /// <summary>The broker's version as it reports it to clients, e.g. "3.10.8".</summary>
    public string Version { get; private set; }

    /// <summary>The options the node was started with.</summary>
    public RabbitMqServerOptions Options { get; }

    /// <summary>Whether the node is running (false after <see cref="StopAsync"/> or dispose).</summary>
    public bool IsRunning { get; private set; }

    private string HomeDirectory => Path.Combine(ServerDirectory, "home");

    private string ConfigFile => Path.Combine(ServerDirectory, "rabbitmq.conf");

    private string PidFile => Path.Combine(ServerDirectory, "rabbit.pid");

    /// <summary>
    /// Creates a private directory and starts a node on free ports of 127.0.0.1, installing
    /// RabbitMQ with apt first when it is not on the machine. Returns once the node answers AMQP.
    /// </summary>
    /// <exception cref="TestServerException">RabbitMQ is missing and cannot be installed, or the node does not start; the message says what was tried and ends with the node's log tail.</exception>
    public static async Task<RabbitMqServer> StartAsync(RabbitMqServerOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new RabbitMqServerOptions();
        Validate(options);
        if (!OperatingSystem.IsLinux())
        {
            throw new TestServerException("RabbitMqServer supports Linux only (it finds the node's processes through /proc).");
        }

        var binaries = await RabbitMqBinaries.LocateOrInstallAsync(options.SbinDirectory, options.AllowInstall, cancellationToken).ConfigureAwait(false);
        var user = await ServerUser.ResolveAsync("rabbitmq", cancellationToken).ConfigureAwait(false);
        var baseDirectory = Path.GetFullPath(options.BaseDirectory ?? PrivateDirectory.DefaultBase);
        ReapOrphans(baseDirectory);

        var server = new RabbitMqServer(options, binaries, user, PrivateDirectory.Create(baseDirectory, DirectoryPrefix));
        ProcessExitCleanup.Register(server);
        try
        {
            await server.InitializeAsync(cancellationToken).ConfigureAwait(false);
            await server.StartNodeAsync(choosePorts: true, "start", cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await server.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        return server;
    }

    /// <summary>
    /// Stops the node gracefully (SIGTERM, RabbitMQ's orderly shutdown as with <c>rabbitmqctl stop</c>:
    /// listeners and connections are closed, queues and message stores are flushed to disk),
    /// keeping its data; <see cref="StartAgainAsync"/> starts it again.
    /// </summary>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        await _lifecycle.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await StopNodeAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _lifecycle.Release();
        }
    }

    /// <summary>Starts a node stopped with <see cref="StopAsync"/> again: same node name, data and ports.</summary>
    public async Task StartAgainAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        await _lifecycle.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (!IsRunning)
            {
                await StartNodeAsync(choosePorts: false, "start again", cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            _lifecycle.Release();
        }
    }

    /// <summary>Stops the node gracefully and starts it again (same node, data and ports). Also starts a stopped node.</summary>
    public async Task RestartAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        await _lifecycle.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await StopNodeAsync(cancellationToken).ConfigureAwait(false);
            await StartNodeAsync(choosePorts: false, "restart", cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _lifecycle.Release();
        }
    }

    /// <summary>
    /// Closes every client connection on the node (<c>rabbitmqctl close_all_connections --global</c>),
    /// as an operator or a failing broker would: clients get connection.close with
    /// CONNECTION_FORCED (320) and <paramref name="reason"/>. The node keeps running and accepts new connections.
    /// </summary>
    public async Task CloseAllConnectionsAsync(string reason, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(reason);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        await _lifecycle.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (!IsRunning)
            {
                throw new InvalidOperationException("The node is stopped; there are no connections to close.");
            }

            var result = await RunCtlAsync(["close_all_connections", "--global", reason], CtlTimeout, cancellationToken).ConfigureAwait(false);
            if (!result.Succeeded)
            {
                throw Failure("rabbitmqctl close_all_connections failed", result);
            }
        }
        finally
        {
            _lifecycle.Release();
        }
    }

    /// <summary>Kills the node at once (SIGKILL; it is deleted anyway), sparing the shared epmd, and deletes its private directory.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _lifecycle.WaitAsync().ConfigureAwait(false);
        try
        {
            await Task.Run(KillAndDelete).ConfigureAwait(false);
        }
        finally
        {
            ProcessExitCleanup.Unregister(this);
            IsRunning = false;
            _lifecycle.Release();
        }
    }

    /// <inheritdoc/>
    public override string ToString()
        => string.Create(CultureInfo.InvariantCulture, $"RabbitMQ {NodeName} {Host}:{Port} ({ServerDirectory})");

    void IProcessExitCleanup.CleanUpAtProcessExit()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            KillAndDelete();
        }
    }

    private static bool KeepDirectories => Environment.GetEnvironmentVariable(KeepEnvironmentVariable) is "1" or "true";

    private static void Validate(RabbitMqServerOptions options)
    {
        if (options.StartupTimeout <= TimeSpan.Zero || options.StopTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentException("StartupTimeout and StopTimeout must be positive.", nameof(options));
        }

        foreach (var (key, value) in options.Settings)
        {
            if (key.Length == 0 || !key.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '.' or '-' or '$'))
            {
                throw new ArgumentException($"'{key}' is not a valid rabbitmq.conf key.", nameof(options));
            }

            if (value.Contains('\n', StringComparison.Ordinal) || value.Contains('\r', StringComparison.Ordinal))
            {
                throw new ArgumentException($"The value of rabbitmq.conf key '{key}' must be a single line.", nameof(options));
            }
        }

        foreach (var plugin in options.Plugins)
        {
            if (plugin.Length == 0 || !plugin.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '_'))
            {
                throw new ArgumentException($"'{plugin}' is not a plugin name (a-z, 0-9, _).", nameof(options));
            }
        }
    }

    private static void ReapOrphans(string baseDirectory)
    {
        foreach (var orphan in PrivateDirectory.FindOrphans(baseDirectory, DirectoryPrefix))
        {
            try
            {
                NodeProcesses.KillAll(orphan, ExitWait);
                PrivateDirectory.TryDelete(orphan);
            }
            catch (Exception)
            {
                // Best effort: a leftover directory must not fail a new node.
            }
        }
    }

    private void KillAndDelete()
    {
        NodeProcesses.KillAll(ServerDirectory, ExitWait);
        if (!KeepDirectories)
        {
            PrivateDirectory.TryDelete(ServerDirectory);
        }
    }

    private async Task InitializeAsync(CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(DataDirectory);
        Directory.CreateDirectory(LogDirectory);
        Directory.CreateDirectory(HomeDirectory);
        Directory.CreateDirectory(Path.Combine(ServerDirectory, "conf.d"));

        var conf = new StringBuilder()
            .AppendLine("# Written by TwoPC.TestServers. Listeners, node name and directories come from the environment (RABBITMQ_*).")
            .AppendLine("loopback_users.guest = true")
            .AppendLine("log.file.level = info");
        foreach (var (key, value) in Options.Settings)
        {
            conf.Append(key).Append(" = ").AppendLine(value);
        }

        await File.WriteAllTextAsync(ConfigFile, conf.ToString(), cancellationToken).ConfigureAwait(false);
        await File.WriteAllTextAsync(
                Path.Combine(ServerDirectory, "enabled_plugins"),
                "[" + string.Join(",", Options.Plugins) + "]." + Environment.NewLine,
                cancellationToken)
            .ConfigureAwait(false);
        // Sourced by the scripts instead of /etc/rabbitmq/rabbitmq-env.conf, which could rename the node or move its files.
        await File.WriteAllTextAsync(Path.Combine(ServerDirectory, "rabbitmq-env.conf"), "# Empty: see rabbitmq.conf." + Environment.NewLine, cancellationToken)
            .ConfigureAwait(false);

        // The node and rabbitmqctl authenticate to each other with this cookie (HOME/.erlang.cookie, owner-only).
        var cookiePath = Path.Combine(HomeDirectory, ".erlang.cookie");
        await File.WriteAllTextAsync(cookiePath, RandomNumberGenerator.GetString("ABCDEFGHIJKLMNOPQRSTUVWXYZ", 32), cancellationToken).ConfigureAwait(false);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(cookiePath, UnixFileMode.UserRead);
        }

        await _user.GiveOwnershipAsync(ServerDirectory, cancellationToken).ConfigureAwait(false);
    }
}
