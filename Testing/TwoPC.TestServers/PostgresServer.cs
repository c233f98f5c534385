using System.Diagnostics;
using System.Globalization;
using Npgsql;
using TwoPC.TestServers.Internal;

namespace TwoPC.TestServers;

/// <summary>
/// A private, throw-away PostgreSQL server for integration tests, the demo and CI: its own data
/// directory (initdb, UTF8, trust authentication, superuser <c>postgres</c>), listening only on
/// 127.0.0.1 on a free port, with its unix socket inside its private directory. The server
/// binaries are found on the machine or installed with apt (see <see cref="PostgresServerOptions.BinDirectory"/>).
/// When the process runs as root, the server runs as the <c>postgres</c> account.
/// </summary>
/// <remarks>
/// Dispose it to stop the server and delete its directory. Servers still running when the process
/// exits are stopped from AppDomain.ProcessExit; those of a killed process are stopped and deleted
/// by the next <see cref="StartAsync"/> that uses the same base directory.
/// </remarks>
public sealed partial class PostgresServer : IAsyncDisposable, IProcessExitCleanup
{
    /// <summary>Environment variable naming the directory of initdb, pg_ctl and postgres (skips discovery and installation).</summary>
    public const string BinDirectoryEnvironmentVariable = PostgresBinaries.BinDirEnvironmentVariable;

    /// <summary>Set to 1 to keep the private directory (data, log) after dispose or a failed start, for debugging.</summary>
    public const string KeepEnvironmentVariable = "TWOPC_TEST_SERVERS_KEEP";

    /// <summary>The superuser (trust authentication, no password).</summary>
    public const string Superuser = "postgres";

    private const int MaxStartAttempts = 3;
    private const int LogTailLines = 40;
    private static readonly TimeSpan InitDbTimeout = TimeSpan.FromMinutes(2);
    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(60);

    private readonly PostgresBinaries _binaries;
    private readonly ServerUser _user;
    private readonly SemaphoreSlim _lifecycle = new(1, 1);
    private int _disposed;

    private PostgresServer(PostgresServerOptions options, PostgresBinaries binaries, ServerUser user, string serverDirectory)
    {
        Options = options;
        _binaries = binaries;
        _user = user;
        ServerDirectory = serverDirectory;
        DataDirectory = Path.Combine(serverDirectory, "data");
        SocketDirectory = Path.Combine(serverDirectory, "run");
        LogFile = Path.Combine(serverDirectory, "postgres.log");
    }

    /// <summary>Always 127.0.0.1: the server listens on loopback only.</summary>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Performance", "CA1822:Mark members as static", Justification = "One of the server's connection facts, read from the instance like Port.")]
    public string Host => "127.0.0.1";

    /// <summary>The TCP port on 127.0.0.1.</summary>
    public int Port { get; private set; }

    /// <summary>The private directory holding <see cref="DataDirectory"/>, <see cref="SocketDirectory"/> and <see cref="LogFile"/>.</summary>
    public string ServerDirectory { get; }

    /// <summary>PGDATA.</summary>
    public string DataDirectory { get; }

    /// <summary>The unix socket directory (unix_socket_directories).</summary>
    public string SocketDirectory { get; }

    /// <summary>The server log (pg_ctl -l).</summary>
    public string LogFile { get; }

    /// <summary>The directory of the initdb, pg_ctl and postgres programs used.</summary>
    public string BinDirectory => _binaries.BinDirectory;

    /// <summary>The output of <c>postgres --version</c>, e.g. "postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)".</summary>
    public string Version => _binaries.Version;

    /// <summary>The options the server was started with.</summary>
    public PostgresServerOptions Options { get; }

    /// <summary>Whether the server is running (false after <see cref="StopAsync"/> or dispose).</summary>
    public bool IsRunning { get; private set; }

    /// <summary>
    /// Creates a private directory, runs initdb, and starts the server on a free port of 127.0.0.1,
    /// installing PostgreSQL with apt first when it is not on the machine.
    /// </summary>
    /// <exception cref="TestServerException">The binaries are missing and cannot be installed, or the server does not start; the message says what was tried and ends with the server log's tail.</exception>
    public static async Task<PostgresServer> StartAsync(PostgresServerOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new PostgresServerOptions();
        Validate(options);

        var binaries = await PostgresBinaries.LocateOrInstallAsync(options.BinDirectory, options.AllowInstall, cancellationToken).ConfigureAwait(false);
        var user = await ServerUser.ResolveAsync("postgres", cancellationToken).ConfigureAwait(false);
        var baseDirectory = Path.GetFullPath(options.BaseDirectory ?? PrivateDirectory.DefaultBase);
        await ReapOrphansAsync(baseDirectory, binaries, user).ConfigureAwait(false);

        var server = new PostgresServer(options, binaries, user, PrivateDirectory.Create(baseDirectory, "pg"));
        ProcessExitCleanup.Register(server);
        try
        {
            await server.InitializeAsync(cancellationToken).ConfigureAwait(false);
            await server.StartServerAsync(choosePort: true, "start", cancellationToken).ConfigureAwait(false);
            await server.ProbeAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await server.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        return server;
    }

    /// <summary>A connection string for <paramref name="database"/> as the superuser, over TCP to 127.0.0.1.</summary>
    public string ConnectionString(string database = "postgres")
    {
        var builder = new NpgsqlConnectionStringBuilder
        {
            Host = Host,
            Port = Port,
            Username = Superuser,
            Database = database,
            Timeout = 15,
            IncludeErrorDetail = true,
        };
        return builder.ConnectionString;
    }

    /// <summary>
    /// Creates a new database (default: a unique name <c>test_XXXXXXXXXXXX</c>) and returns its
    /// connection string. Tests use one database per test class.
    /// </summary>
    /// <param name="name">A lower-case identifier (a-z, 0-9, _; at most 63 characters), or null for a unique name.</param>
    /// <param name="cancellationToken">Cancels the CREATE DATABASE.</param>
    public async Task<string> CreateDatabaseAsync(string? name = null, CancellationToken cancellationToken = default)
    {
        name ??= "test_" + Guid.NewGuid().ToString("N")[..12];
        if (!IsPlainIdentifier(name))
        {
            throw new ArgumentException($"'{name}' is not a plain lower-case identifier (a-z, 0-9, _; at most 63 characters, not starting with a digit).", nameof(name));
        }

        var connection = new NpgsqlConnection(AdminConnectionString());
        await using (connection.ConfigureAwait(false))
        {
            await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
            var command = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", connection);
            await using var commandScope = command.ConfigureAwait(false);
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        return ConnectionString(name);
    }

    /// <summary>
    /// Crashes the server (pg_ctl stop -m immediate: no shutdown checkpoint, like a power cut for
    /// the server processes) and starts it again on the same port. On restart PostgreSQL runs crash
    /// recovery; committed data and prepared transactions survive. Clears Npgsql's connection pools,
    /// whose connections the crash broke. Also starts a server stopped with <see cref="StopAsync"/>.
    /// </summary>
    public async Task RestartImmediateAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        await _lifecycle.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await StopServerAsync("immediate", cancellationToken).ConfigureAwait(false);
            NpgsqlConnection.ClearAllPools();
            await StartServerAsync(choosePort: false, "restart", cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _lifecycle.Release();
        }
    }

    /// <summary>Stops the server cleanly (pg_ctl stop -m fast), keeping its data; <see cref="StartAgainAsync"/> starts it again.</summary>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        await _lifecycle.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await StopServerAsync("fast", cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _lifecycle.Release();
        }
    }

    /// <summary>Starts a server stopped with <see cref="StopAsync"/> again, on the same port and with its data.</summary>
    public async Task StartAgainAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        await _lifecycle.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (!IsRunning)
            {
                await StartServerAsync(choosePort: false, "start again", cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            _lifecycle.Release();
        }
    }

    /// <summary>Stops the server at once (pg_ctl stop -m immediate) and deletes its private directory.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _lifecycle.WaitAsync().ConfigureAwait(false);
        try
        {
            try
            {
                await StopServerAsync("immediate", CancellationToken.None).ConfigureAwait(false);
            }
            catch (TestServerException)
            {
                // Fall through to killing the postmaster.
            }

            KillPostmaster(DataDirectory);
            if (!KeepDirectories)
            {
                PrivateDirectory.TryDelete(ServerDirectory);
            }
        }
        finally
        {
            ProcessExitCleanup.Unregister(this);
            _lifecycle.Release();
        }
    }

    /// <inheritdoc/>
    public override string ToString()
        => string.Create(CultureInfo.InvariantCulture, $"PostgreSQL {Host}:{Port} ({DataDirectory})");

    void IProcessExitCleanup.CleanUpAtProcessExit()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        if (File.Exists(Path.Combine(DataDirectory, "postmaster.pid")))
        {
            _user.Run(_binaries.PgCtl, ["stop", "-D", DataDirectory, "-m", "immediate", "-w", "-t", "10"], TimeSpan.FromSeconds(15), ServerDirectory);
        }

        KillPostmaster(DataDirectory);
        if (!KeepDirectories)
        {
            PrivateDirectory.TryDelete(ServerDirectory);
        }
    }

    private static bool KeepDirectories => Environment.GetEnvironmentVariable(KeepEnvironmentVariable) is "1" or "true";

    private static void Validate(PostgresServerOptions options)
    {
        if (options.MaxPreparedTransactions < 0)
        {
            throw new ArgumentException("MaxPreparedTransactions must be 0 or more.", nameof(options));
        }

        if (options.MaxConnections < 1)
        {
            throw new ArgumentException("MaxConnections must be 1 or more.", nameof(options));
        }

        if (options.StartupTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentException("StartupTimeout must be positive.", nameof(options));
        }

        foreach (var name in options.Settings.Keys)
        {
            if (name.Length == 0 || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '.') || char.IsAsciiDigit(name[0]))
            {
                throw new ArgumentException($"'{name}' is not a valid PostgreSQL setting name.", nameof(options));
            }
        }
    }

    private static bool IsPlainIdentifier(string name)
        => name.Length is > 0 and <= 63
            && !char.IsAsciiDigit(name[0])
            && name.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '_');

    private static async Task ReapOrphansAsync(string baseDirectory, PostgresBinaries binaries, ServerUser user)
    {
        foreach (var orphan in PrivateDirectory.FindOrphans(baseDirectory, "pg"))
        {
            try
            {
                var dataDirectory = Path.Combine(orphan, "data");
                if (File.Exists(Path.Combine(dataDirectory, "postmaster.pid")))
                {
                    await user.RunAsync(binaries.PgCtl, ["stop", "-D", dataDirectory, "-m", "immediate", "-w", "-t", "20"], TimeSpan.FromSeconds(30), orphan)
                        .ConfigureAwait(false);
                    KillPostmaster(dataDirectory);
                }

                PrivateDirectory.TryDelete(orphan);
            }
            catch (Exception)
            {
                // Best effort: a leftover directory must not fail a new server.
            }
        }
    }

    /// <summary>SIGKILLs the postmaster named in postmaster.pid if it still runs (its children exit when it dies).</summary>
    private static void KillPostmaster(string dataDirectory)
    {
        try
        {
            var pidFile = Path.Combine(dataDirectory, "postmaster.pid");
            if (!File.Exists(pidFile))
            {
                return;
            }

            var firstLine = File.ReadLines(pidFile).FirstOrDefault();
            if (!int.TryParse(firstLine, NumberStyles.Integer, CultureInfo.InvariantCulture, out var pid))
            {
                return;
            }

            using var process = Process.GetProcessById(pid);
            if (process.ProcessName is "postgres" or "postmaster")
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit(TimeSpan.FromSeconds(10));
            }
        }
        catch (Exception)
        {
            // Gone already, or not ours.
        }
    }
}
