using System.Diagnostics;
using System.Globalization;
using System.Text;
using TwoPC.TestServers.Internal;

namespace TwoPC.TestServers;

// The node's process: starting it on free ports, waiting until it serves, stopping it, running rabbitmqctl with the
// node's environment, and the failure messages that quote its log.
public sealed partial class RabbitMqServer
{
    private async Task StartNodeAsync(bool choosePorts, string what, CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            if (choosePorts)
            {
                Port = FreePort.OnLoopback();
                do
                {
                    DistributionPort = FreePort.OnLoopback();
                }
                while (DistributionPort == Port);
            }

            TryDeleteFile(PidFile);
            var logOffsets = (Node: FileLength(LogFile), Console: FileLength(ConsoleLogFile));
            var stopwatch = Stopwatch.StartNew();

            // The launcher shell starts rabbitmq-server in the background with its output in the
            // console log and prints its pid. The script stays in the foreground of its own, runs
            // the Erlang VM and stops it gracefully on SIGTERM.
            var launch = await RunWithNodeEnvironmentAsync(
                    "/bin/sh",
                    ["-c", "\"$@\" >>\"$0\" 2>&1 </dev/null & echo $!", ConsoleLogFile, _binaries.Server],
                    LaunchTimeout,
                    cancellationToken)
                .ConfigureAwait(false);
            if (!launch.Succeeded || !int.TryParse(launch.Output.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var launcherPid))
            {
                throw Failure($"could not launch rabbitmq-server to {what}", launch);
            }

            _launcherPid = launcherPid;
            var failure = await WaitUntilReadyAsync(stopwatch, cancellationToken).ConfigureAwait(false);
            if (failure is null)
            {
                IsRunning = true;
                return;
            }

            // Leave nothing half-started behind (the node may hang in boot, or its script may linger).
            NodeProcesses.KillAll(ServerDirectory, ExitWait);
            IsRunning = false;

            // Another process may have taken a port between choosing and binding it: try other ports.
            var newOutput = LogTail.TextSince(LogFile, logOffsets.Node) + LogTail.TextSince(ConsoleLogFile, logOffsets.Console);
            if (choosePorts && attempt < MaxStartAttempts && (newOutput.Contains("eaddrinuse", StringComparison.Ordinal) || newOutput.Contains("already in use", StringComparison.OrdinalIgnoreCase)))
            {
                continue;
            }

            var portHint = !choosePorts && FreePortsTaken() is { } taken ? $" ({taken})" : string.Empty;
            // The console output has boot failures (config errors, listeners that cannot bind) that happen before the node log exists.
            var consoleLines = LogTail.TextSince(ConsoleLogFile, logOffsets.Console).Split('\n').Select(line => line.TrimEnd('\r')).ToList();
            var errors = consoleLines
                .Where(line => line.Contains("[error]", StringComparison.Ordinal) || line.Contains("BOOT FAILED", StringComparison.Ordinal) || line.StartsWith("Error", StringComparison.Ordinal))
                .Take(10)
                .Concat(consoleLines.Where(line => line.StartsWith("init terminating", StringComparison.Ordinal) || line.StartsWith("Kernel pid terminated (", StringComparison.Ordinal)).TakeLast(1))
                .ToList();
            throw new TestServerException(
                Describe(string.Create(CultureInfo.InvariantCulture, $"the node did not {what} (attempt {attempt} of {(choosePorts ? MaxStartAttempts : 1)}): {failure}{portHint}"))
                + "  command: " + ProcessRunner.FormatCommandLine(_binaries.Server, []) + " as " + _user.Description
                + ", environment RABBITMQ_NODENAME, RABBITMQ_NODE_PORT, RABBITMQ_DIST_PORT, RABBITMQ_MNESIA_BASE, ... (see above)" + Environment.NewLine
                + (errors.Count == 0 ? string.Empty : "--- first errors in the console output ---" + Environment.NewLine + string.Join(Environment.NewLine, errors) + Environment.NewLine)
                + LogTail.Format(ConsoleLogFile, 20) + Environment.NewLine
                + LogTail.Format(LogFile, LogTailLines));
        }
    }

    /// <summary>Null once the node answers AMQP as itself; otherwise why not (it exited, or the startup timeout passed).</summary>
    private async Task<string?> WaitUntilReadyAsync(Stopwatch stopwatch, CancellationToken cancellationToken)
    {
        string? lastError = null;
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var (greeting, error) = await AmqpProbe.TryGreetAsync(Host, Port, ProbeTimeout, cancellationToken).ConfigureAwait(false);
            var launcherAlive = NodeProcesses.IsAlive(_launcherPid);
            if (greeting is not null)
            {
                // The port might belong to another broker that took it in between. Ours names its cluster
                // after its node: twopc-RANDOM@ the machine's host name (not "localhost").
                var isOurs = Options.Settings.ContainsKey("cluster_name")
                    || greeting.ClusterName is null
                    || greeting.ClusterName.StartsWith(NodeName[..(NodeName.IndexOf('@', StringComparison.Ordinal) + 1)], StringComparison.Ordinal);
                if (isOurs && launcherAlive)
                {
                    Version = greeting.Version ?? Version;
                    return null;
                }

                lastError = isOurs
                    ? "the node answered AMQP, but its rabbitmq-server process then exited"
                    : $"port {Port.ToString(CultureInfo.InvariantCulture)} is answered by another broker ('{greeting.ClusterName}')";
            }
            else
            {
                lastError = "AMQP probe: " + error;
            }

            if (!launcherAlive)
            {
                return string.Create(CultureInfo.InvariantCulture, $"rabbitmq-server exited after {stopwatch.Elapsed.TotalSeconds:F1} s (last {lastError})");
            }

            if (stopwatch.Elapsed > Options.StartupTimeout)
            {
                return string.Create(CultureInfo.InvariantCulture, $"not ready after {Options.StartupTimeout.TotalSeconds:F0} s (StartupTimeout; last {lastError}); the node was killed");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(200), cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Graceful stop: SIGTERM to the rabbitmq-server script, which passes it on to the VM, which
    /// stops RabbitMQ as <c>rabbitmqctl stop</c> would (without booting a CLI VM first). Falls back
    /// to <c>rabbitmqctl stop</c> when the script is gone or the node outlives StopTimeout.
    /// </summary>
    private async Task StopNodeAsync(CancellationToken cancellationToken)
    {
        if (!IsRunning && NodeProcesses.Find(ServerDirectory).Count == 0)
        {
            return;
        }

        var stopped = false;
        if (NodeProcesses.IsAlive(_launcherPid))
        {
            await ProcessRunner.RunAsync(
                    Executables.Find("kill") ?? "/bin/kill",
                    ["-TERM", _launcherPid.ToString(CultureInfo.InvariantCulture)],
                    TimeSpan.FromSeconds(10),
                    cancellationToken: cancellationToken)
                .ConfigureAwait(false);
            stopped = await WaitUntilGoneAsync(Options.StopTimeout, cancellationToken).ConfigureAwait(false);
        }

        if (!stopped)
        {
            var result = await RunCtlAsync(["stop", PidFile], Options.StopTimeout + TimeSpan.FromSeconds(10), cancellationToken).ConfigureAwait(false);
            if (!await WaitUntilGoneAsync(ExitWait, cancellationToken).ConfigureAwait(false))
            {
                throw Failure(
                    string.Create(CultureInfo.InvariantCulture, $"the node did not stop within {Options.StopTimeout.TotalSeconds:F0} s of SIGTERM, nor with rabbitmqctl stop"),
                    result);
            }
        }

        // The VM's helpers (erl_child_setup, inet_gethost) go with it; make sure the ports are free for a start again.
        NodeProcesses.KillAll(ServerDirectory, ExitWait);
        IsRunning = false;
    }

    /// <summary>Waits until the rabbitmq-server script and the Erlang VM (named in the pid file) have exited.</summary>
    private async Task<bool> WaitUntilGoneAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        var stopwatch = Stopwatch.StartNew();
        while (true)
        {
            var vmPid = int.TryParse(LogTail.TextSince(PidFile, 0).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) ? pid : 0;
            if (!NodeProcesses.IsAlive(_launcherPid) && (vmPid == 0 || !NodeProcesses.IsAlive(vmPid)))
            {
                return true;
            }

            if (stopwatch.Elapsed > timeout)
            {
                return false;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(50), cancellationToken).ConfigureAwait(false);
        }
    }

    private Task<ProcessResult> RunCtlAsync(IReadOnlyList<string> arguments, TimeSpan timeout, CancellationToken cancellationToken)
        => RunWithNodeEnvironmentAsync(_binaries.Ctl, ["-n", NodeName, .. arguments], timeout, cancellationToken);

    /// <summary>
    /// Runs a program as the node's account with exactly the node's environment (env -i): nothing
    /// from the test process (RABBITMQ_*, ERL_*) leaks in, and runuser/su cannot reset HOME.
    /// </summary>
    private Task<ProcessResult> RunWithNodeEnvironmentAsync(string fileName, IReadOnlyList<string> arguments, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var env = Executables.Find("env") ?? "/usr/bin/env";
        var path = string.Join(':', new[] { Environment.GetEnvironmentVariable("PATH") ?? string.Empty, "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" }.Where(p => p.Length > 0));
        const string LoopbackOnly = "-kernel inet_dist_use_interface {127,0,0,1}";
        string[] variables =
        [
            "PATH=" + path,
            "HOME=" + HomeDirectory,
            "LANG=C.UTF-8",
            "LC_ALL=C.UTF-8",
            "ERL_EPMD_ADDRESS=127.0.0.1",
            "ERL_CRASH_DUMP=" + Path.Combine(LogDirectory, "erl_crash.dump"),
            "RABBITMQ_NODENAME=" + NodeName,
            "RABBITMQ_NODE_IP_ADDRESS=" + Host,
            "RABBITMQ_NODE_PORT=" + Port.ToString(CultureInfo.InvariantCulture),
            "RABBITMQ_DIST_PORT=" + DistributionPort.ToString(CultureInfo.InvariantCulture),
            "RABBITMQ_MNESIA_BASE=" + DataDirectory,
            "RABBITMQ_LOG_BASE=" + LogDirectory,
            "RABBITMQ_LOGS=" + LogFile,
            "RABBITMQ_PID_FILE=" + PidFile,
            "RABBITMQ_CONFIG_FILE=" + ConfigFile,
            "RABBITMQ_CONFIG_FILES=" + Path.Combine(ServerDirectory, "conf.d"),
            "RABBITMQ_ADVANCED_CONFIG_FILE=" + Path.Combine(ServerDirectory, "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE=" + Path.Combine(ServerDirectory, "enabled_plugins"),
            "RABBITMQ_CONF_ENV_FILE=" + Path.Combine(ServerDirectory, "rabbitmq-env.conf"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=" + LoopbackOnly,
            "RABBITMQ_CTL_ERL_ARGS=" + LoopbackOnly,
            // rabbitmqctl's own distribution ports: a wider range than the default 35672-35682 for many parallel CLI calls.
            "RABBITMQ_CTL_DIST_PORT_MIN=35672",
            "RABBITMQ_CTL_DIST_PORT_MAX=35872",
        ];
        return _user.RunAsync(env, ["-i", .. variables, fileName, .. arguments], timeout, ServerDirectory, cancellationToken);
    }

    /// <summary>For a start on the old ports: which of them another process holds now, if any.</summary>
    private string? FreePortsTaken()
    {
        var taken = new[] { (Name: "AMQP", Number: Port), (Name: "distribution", Number: DistributionPort) }
            .Where(port => !IsFree(port.Number))
            .Select(port => string.Create(CultureInfo.InvariantCulture, $"{port.Name} port {port.Number} is in use by another process"))
            .ToList();
        return taken.Count == 0 ? null : string.Join("; ", taken);

        static bool IsFree(int port)
        {
            try
            {
                using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
                socket.Bind(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, port));
                return true;
            }
            catch (System.Net.Sockets.SocketException)
            {
                return false;
            }
        }
    }

    private static long FileLength(string path)
    {
        try
        {
            return File.Exists(path) ? new FileInfo(path).Length : 0;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return 0;
        }
    }

    private static void TryDeleteFile(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }
    }

    private TestServerException Failure(string what, ProcessResult result)
        => new($"{Describe(what)}{result.Describe()}{LogTail.Format(LogFile, LogTailLines)}");

    private string Describe(string what)
        => new StringBuilder()
            .Append("RabbitMQ test server: ").AppendLine(what)
            .Append("  scripts:   ").Append(_binaries.SbinDirectory).Append(" (RabbitMQ ").Append(Version).AppendLine(")")
            .Append("  runs as:   ").AppendLine(_user.Description)
            .Append("  node:      ").AppendLine(NodeName)
            .Append("  AMQP:      ").Append(Host).Append(':').Append(Port.ToString(CultureInfo.InvariantCulture))
            .Append(", distribution port ").Append(DistributionPort.ToString(CultureInfo.InvariantCulture)).AppendLine()
            .Append("  data dir:  ").AppendLine(DataDirectory)
            .Append("  log file:  ").Append(LogFile)
            .AppendLine(KeepDirectories ? string.Empty : $" (deleted with the node's directory; set {KeepEnvironmentVariable}=1 to keep it)")
            .ToString();
}
