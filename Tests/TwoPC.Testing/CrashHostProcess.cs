using System.Diagnostics;
using System.Reflection;
using System.Text;

namespace TwoPC.Testing;

/// <summary>
/// One run of the crash host (Tests/TwoPC.CrashHost), or of another program of the repository, as a separate OS process: stdout lines are
/// collected as they arrive, <see cref="Kill"/> sends SIGKILL, and every wait has a timeout that
/// kills the host and fails with its full output instead of hanging the test run.
/// </summary>
public sealed class CrashHostProcess : IDisposable
{
    private static readonly Lazy<string> HostDll = new(LocateHostDll);

    private readonly Process _process;
    private readonly List<string> _stdout = [];
    private readonly StringBuilder _stderr = new();
    private readonly Lock _gate = new();
    private readonly TaskCompletionSource _stdoutClosed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Stopwatch _elapsed = Stopwatch.StartNew();

    private CrashHostProcess(string dll, IReadOnlyList<string> arguments, IReadOnlyDictionary<string, string>? environment = null)
    {
        Arguments = Path.GetFileNameWithoutExtension(dll) + " " + string.Join(' ', arguments);
        var start = new ProcessStartInfo(DotnetHost())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = false,
            UseShellExecute = false,
            CreateNoWindow = true,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        start.ArgumentList.Add(dll);
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }

        _process = new Process { StartInfo = start, EnableRaisingEvents = true };
        _process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                _stdoutClosed.TrySetResult();
                return;
            }

            lock (_gate)
            {
                _stdout.Add(e.Data);
            }
        };
        _process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (_gate)
                {
                    _stderr.Append(e.Data).Append('\n');
                }
            }
        };
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    /// <summary>The host's command line (without the dll), for failure messages.</summary>
    public string Arguments { get; }

    /// <summary>The exit code, once exited (137-like codes are not reported for a SIGKILL: see <see cref="Killed"/>).</summary>
    public int? ExitCode => _process.HasExited ? _process.ExitCode : null;

    /// <summary>The OS process id (for /proc figures such as its resident memory or open descriptors).</summary>
    public int ProcessId => _process.Id;

    /// <summary>Whether the test killed it.</summary>
    public bool Killed { get; private set; }

    /// <summary>Every stdout line so far.</summary>
    public IReadOnlyList<string> StdoutLines
    {
        get
        {
            lock (_gate)
            {
                return [.. _stdout];
            }
        }
    }

    public static CrashHostProcess Start(params IReadOnlyList<string> arguments) => new(HostDll.Value, arguments);

    /// <summary>
    /// Starts another program of this repository as a separate process: <paramref name="project"/> is its
    /// directory relative to TwoPC.sln (for example <c>Coordinator/TwoPC.Coordinator.Server</c>), built in the
    /// test assembly's configuration (reference it with <c>ReferenceOutputAssembly="false"</c> to have it built).
    /// </summary>
    public static CrashHostProcess StartProgram(string project, IReadOnlyList<string> arguments, IReadOnlyDictionary<string, string>? environment = null) =>
        new(LocateDll(project), arguments, environment);

    /// <summary>
    /// Waits for the first stdout line that starts with one of <paramref name="prefixes"/>; returns
    /// <see langword="null"/> when the host exits (and its stdout closes) without printing one.
    /// </summary>
    public async Task<string?> WaitForLineAsync(TimeSpan timeout, params string[] prefixes)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            var closed = _stdoutClosed.Task.IsCompleted && _process.HasExited;
            lock (_gate)
            {
                foreach (var line in _stdout)
                {
                    if (prefixes.Any(p => line.StartsWith(p, StringComparison.Ordinal)))
                    {
                        return line;
                    }
                }
            }

            if (closed)
            {
                return null;
            }

            if (deadline.Elapsed > timeout)
            {
                Kill();
                throw new TimeoutException($"The process printed none of [{string.Join(", ", prefixes)}] within {timeout.TotalSeconds:0.#} s; killed it.\n{Describe()}");
            }

            await Task.Delay(10);
        }
    }

    /// <summary>Waits for the host to exit on its own; on timeout kills it and throws with its output.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cts.Token);
            await _stdoutClosed.Task.WaitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            Kill();
            throw new TimeoutException($"The process did not exit within {timeout.TotalSeconds:0.#} s; killed it.\n{Describe()}");
        }

        return _process.ExitCode;
    }

    /// <summary>SIGKILLs the host (Process.Kill on Linux) and waits until it is gone and its stdout is drained.</summary>
    public void Kill()
    {
        if (!_process.HasExited)
        {
            Killed = true;
            try
            {
                _process.Kill(entireProcessTree: false);
            }
            catch (InvalidOperationException)
            {
                // It exited in the meantime.
            }
        }

        if (!_process.WaitForExit(TimeSpan.FromSeconds(15)))
        {
            throw new TimeoutException($"The process survived SIGKILL for 15 s.\n{Describe()}");
        }

        // Drain the pipe: the lines written before the kill are part of what the caller was told.
        _stdoutClosed.Task.Wait(TimeSpan.FromSeconds(5));
    }

    /// <summary>Command line, exit status, stdout and stderr (stderr truncated), for assertion messages.</summary>
    public string Describe()
    {
        string stdout;
        string stderr;
        lock (_gate)
        {
            stdout = string.Join('\n', _stdout.Count > 400 ? [.. _stdout.Take(200), $"... {_stdout.Count - 400} lines ...", .. _stdout.TakeLast(200)] : _stdout);
            stderr = _stderr.Length > 20_000 ? _stderr.ToString(0, 10_000) + "\n...\n" + _stderr.ToString(_stderr.Length - 10_000, 10_000) : _stderr.ToString();
        }

        var status = _process.HasExited ? (Killed ? "killed (SIGKILL)" : $"exit code {_process.ExitCode}") : "running";
        return $"--- process: {Arguments} [{status}, {_elapsed.Elapsed.TotalSeconds:0.00} s]\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}";
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            Kill();
        }

        _process.Dispose();
    }

    private static string DotnetHost()
    {
        // The SDK sets DOTNET_HOST_PATH for the processes it starts (the test host among them).
        if (Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } hostPath && File.Exists(hostPath))
        {
            return hostPath;
        }

        if (Environment.ProcessPath is { } self && Path.GetFileNameWithoutExtension(self).Equals("dotnet", StringComparison.OrdinalIgnoreCase))
        {
            return self;
        }

        return "dotnet";
    }

    /// <summary>
    /// {project}/bin/{configuration of this test assembly}/net10.0/{project name}.dll, found by walking up from
    /// the test's output directory to the directory holding TwoPC.sln. The test project references the
    /// program's project (without its assembly), so building the tests builds it.
    /// </summary>
    private static string LocateHostDll() => LocateDll(Path.Combine("Tests", "TwoPC.CrashHost"));

    private static string LocateDll(string project)
    {
        var configuration = typeof(CrashHostProcess).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration is { Length: > 0 } c ? c : "Debug";
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "TwoPC.sln")))
        {
            directory = directory.Parent;
        }

        if (directory is null)
        {
            throw new InvalidOperationException($"TwoPC.sln not found above {AppContext.BaseDirectory}; cannot locate {project}.");
        }

        var name = Path.GetFileName(project.TrimEnd('/', Path.DirectorySeparatorChar));
        var dll = Path.Combine(directory.FullName, project, "bin", configuration, "net10.0", name + ".dll");
        return File.Exists(dll)
            ? dll
            : throw new FileNotFoundException($"{dll} is missing. Build {project} (configuration {configuration}) first; the test project references it so building the tests builds it.", dll);
    }
}
