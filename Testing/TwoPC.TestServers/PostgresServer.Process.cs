using System.Globalization;
using System.Text;
using Npgsql;
using TwoPC.TestServers.Internal;

namespace TwoPC.TestServers;

// The server's process: initdb, starting it on a free port, probing it, stopping it, and the failure messages that
// quote its log.
public sealed partial class PostgresServer
{
    private async Task InitializeAsync(CancellationToken cancellationToken)
    {
        var socketPath = Path.Combine(SocketDirectory, ".s.PGSQL.65535");
        if (Encoding.UTF8.GetByteCount(socketPath) > 107)
        {
            throw new TestServerException(
                $"The unix socket path {socketPath} would exceed the 107-byte limit; choose a shorter PostgresServerOptions.BaseDirectory (now {Path.GetDirectoryName(ServerDirectory)}).");
        }

        Directory.CreateDirectory(SocketDirectory);
        await _user.GiveOwnershipAsync(ServerDirectory, cancellationToken).ConfigureAwait(false);

        var initdb = await _user.RunAsync(
                _binaries.InitDb,
                ["-D", DataDirectory, "-U", Superuser, "-E", "UTF8", "--locale=C", "-A", "trust", "--no-sync"],
                InitDbTimeout,
                ServerDirectory,
                cancellationToken)
            .ConfigureAwait(false);
        if (!initdb.Succeeded)
        {
            throw Failure("initdb failed", initdb);
        }

        var settings = new List<KeyValuePair<string, string>>
        {
            new("listen_addresses", Host),
            new("unix_socket_directories", SocketDirectory),
            new("max_connections", Options.MaxConnections.ToString(CultureInfo.InvariantCulture)),
            new("max_prepared_transactions", Options.MaxPreparedTransactions.ToString(CultureInfo.InvariantCulture)),
            new("fsync", Options.Fsync ? "on" : "off"),
            new("logging_collector", "off"),
        };
        settings.AddRange(Options.Settings);

        var conf = new StringBuilder().AppendLine().AppendLine("# Added by TwoPC.TestServers (the port is given on the command line).");
        foreach (var (name, value) in settings)
        {
            conf.Append(name).Append(" = '").Append(value.Replace("'", "''", StringComparison.Ordinal)).AppendLine("'");
        }

        await File.AppendAllTextAsync(Path.Combine(DataDirectory, "postgresql.conf"), conf.ToString(), cancellationToken).ConfigureAwait(false);
    }

    private async Task StartServerAsync(bool choosePort, string what, CancellationToken cancellationToken)
    {
        var timeoutSeconds = Math.Max(1, (int)Math.Ceiling(Options.StartupTimeout.TotalSeconds));
        for (var attempt = 1; ; attempt++)
        {
            if (choosePort)
            {
                Port = FreePort.OnLoopback();
            }

            var logOffset = File.Exists(LogFile) ? new FileInfo(LogFile).Length : 0;
            var result = await _user.RunAsync(
                    _binaries.PgCtl,
                    [
                        "start", "-D", DataDirectory, "-l", LogFile, "-w", "-t", timeoutSeconds.ToString(CultureInfo.InvariantCulture),
                        "-o", "-p " + Port.ToString(CultureInfo.InvariantCulture),
                    ],
                    Options.StartupTimeout + TimeSpan.FromSeconds(30),
                    ServerDirectory,
                    cancellationToken)
                .ConfigureAwait(false);
            if (result.Succeeded)
            {
                IsRunning = true;
                return;
            }

            // Another process may have taken the port between choosing and binding it: try another.
            if (choosePort && attempt < MaxStartAttempts && !result.TimedOut && LogTail.TextSince(LogFile, logOffset).Contains("could not bind", StringComparison.Ordinal))
            {
                continue;
            }

            throw Failure(
                string.Create(CultureInfo.InvariantCulture, $"the server did not {what} (attempt {attempt} of {(choosePort ? MaxStartAttempts : 1)})"),
                result);
        }
    }

    private async Task StopServerAsync(string mode, CancellationToken cancellationToken)
    {
        if (!File.Exists(Path.Combine(DataDirectory, "postmaster.pid")))
        {
            IsRunning = false;
            return;
        }

        var result = await _user.RunAsync(
                _binaries.PgCtl,
                ["stop", "-D", DataDirectory, "-m", mode, "-w", "-t", StopTimeout.TotalSeconds.ToString(CultureInfo.InvariantCulture)],
                StopTimeout + TimeSpan.FromSeconds(15),
                ServerDirectory,
                cancellationToken)
            .ConfigureAwait(false);
        if (!result.Succeeded && File.Exists(Path.Combine(DataDirectory, "postmaster.pid")))
        {
            throw Failure($"pg_ctl stop -m {mode} failed", result);
        }

        IsRunning = false;
    }

    private async Task ProbeAsync(CancellationToken cancellationToken)
    {
        try
        {
            var connection = new NpgsqlConnection(AdminConnectionString());
            await using var connectionScope = connection.ConfigureAwait(false);
            await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
            var command = new NpgsqlCommand("SELECT 1", connection);
            await using var commandScope = command.ConfigureAwait(false);
            await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException or IOException)
        {
            throw new TestServerException($"{Describe("pg_ctl started the server, but connecting to it failed: " + ex.Message)}{LogTail.Format(LogFile, LogTailLines)}", ex);
        }
    }

    private string AdminConnectionString()
        => new NpgsqlConnectionStringBuilder(ConnectionString()) { Pooling = false }.ConnectionString;

    private TestServerException Failure(string what, ProcessResult result)
        => new($"{Describe(what)}{result.Describe()}{LogTail.Format(LogFile, LogTailLines)}");

    private string Describe(string what)
        => new StringBuilder()
            .Append("PostgreSQL test server: ").AppendLine(what)
            .Append("  binaries:  ").Append(_binaries.BinDirectory).Append(" (").Append(_binaries.Version).AppendLine(")")
            .Append("  runs as:   ").AppendLine(_user.Description)
            .Append("  port:      ").Append(Host).Append(':').Append(Port.ToString(CultureInfo.InvariantCulture)).AppendLine()
            .Append("  data dir:  ").AppendLine(DataDirectory)
            .Append("  log file:  ").Append(LogFile)
            .AppendLine(KeepDirectories ? string.Empty : $" (deleted with the server's directory; set {KeepEnvironmentVariable}=1 to keep it)")
            .ToString();
}
