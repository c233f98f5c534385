using System.Diagnostics;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Text;

namespace TwoPC.Samples.Demo;

/// <summary>
/// A program of this repository (a sample service, the coordinator) run as a child process with <c>dotnet its.dll</c>:
/// its stdout and stderr lines are collected (and echoed with <c>--verbose</c>), <see cref="Kill"/> is SIGKILL.
/// </summary>
internal sealed class ChildProcess : IDisposable
{
    private readonly Process _process;
    private readonly List<string> _lines = [];
    private readonly Lock _gate = new();
    private readonly bool _echo;

    private ChildProcess(string name, string dll, IEnumerable<string> arguments, bool echo)
    {
        Name = name;
        _echo = echo;
        var start = new ProcessStartInfo(DotnetHost())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            CreateNoWindow = true,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
            WorkingDirectory = Path.GetDirectoryName(dll)!, // its appsettings.json holds the defaults; arguments override them
        };
        start.ArgumentList.Add(dll);
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        _process = new Process { StartInfo = start, EnableRaisingEvents = true };
        _process.OutputDataReceived += (_, e) => Collect(e.Data);
        _process.ErrorDataReceived += (_, e) => Collect(e.Data);
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    /// <summary>A short name for the narrative ("orders", "coordinator").</summary>
    public string Name { get; }

    public bool HasExited => _process.HasExited;

    public int? ExitCode => _process.HasExited ? _process.ExitCode : null;

    public int LineCount
    {
        get
        {
            lock (_gate)
            {
                return _lines.Count;
            }
        }
    }

    /// <summary>Starts <paramref name="project"/> (its directory relative to TwoPC.sln), built in the demo's configuration.</summary>
    public static ChildProcess Start(string name, string project, IEnumerable<string> arguments, bool echo) =>
        new(name, LocateDll(project), arguments, echo);

    /// <summary>The lines collected so far, from <paramref name="from"/> on.</summary>
    public IReadOnlyList<string> Lines(int from = 0)
    {
        lock (_gate)
        {
            return [.. _lines.Skip(from)];
        }
    }

    /// <summary>Waits for a line (from line <paramref name="from"/> on) that matches; <see langword="null"/> if the process exits first.</summary>
    /// <exception cref="TimeoutException">None within <paramref name="timeout"/>.</exception>
    public async Task<string?> WaitForLineAsync(Func<string, bool> match, TimeSpan timeout, CancellationToken cancellationToken, int from = 0)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var exited = _process.HasExited;
            lock (_gate)
            {
                for (var i = from; i < _lines.Count; i++)
                {
                    if (match(_lines[i]))
                    {
                        return _lines[i];
                    }
                }
            }

            if (exited)
            {
                return null;
            }

            if (clock.Elapsed > timeout)
            {
                throw new TimeoutException($"{Name}: the expected line did not appear within {timeout.TotalSeconds:0} s.");
            }

            await Task.Delay(20, cancellationToken);
        }
    }

    /// <summary>Waits for the process to exit.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout);
        try
        {
            await _process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            Kill();
            throw new TimeoutException($"{Name} did not exit within {timeout.TotalSeconds:0} s; killed it.");
        }

        _process.WaitForExit(); // drains the output
        return _process.ExitCode;
    }

    /// <summary>SIGKILL: no shutdown, no flushing — a crash.</summary>
    public void Kill()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }
        }
        catch (InvalidOperationException)
        {
            // Exited in the meantime.
        }

        _process.WaitForExit(TimeSpan.FromSeconds(15));
    }

    /// <summary>The last lines, for failure reports.</summary>
    public string Tail(int count = 40) => string.Join('\n', Lines().TakeLast(count).Select(l => $"    [{Name}] {l}"));

    public void Dispose()
    {
        Kill();
        _process.Dispose();
    }

    private void Collect(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_gate)
        {
            _lines.Add(line);
        }

        if (_echo)
        {
            Console.WriteLine($"    [{Name}] {line}");
        }
    }

    private static string DotnetHost()
    {
        if (Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } hostPath && File.Exists(hostPath))
        {
            return hostPath;
        }

        if (Environment.ProcessPath is { } self && Path.GetFileNameWithoutExtension(self).Equals("dotnet", StringComparison.OrdinalIgnoreCase))
        {
            return self;
        }

        // .../dotnet/shared/Microsoft.NETCore.App/10.0.x/ → .../dotnet/dotnet
        var root = new DirectoryInfo(RuntimeEnvironment.GetRuntimeDirectory()).Parent?.Parent?.Parent;
        var muxer = root is null ? null : Path.Combine(root.FullName, OperatingSystem.IsWindows() ? "dotnet.exe" : "dotnet");
        return muxer is not null && File.Exists(muxer) ? muxer : "dotnet";
    }

    /// <summary>{repository}/{project}/bin/{the demo's configuration}/net10.0/{project name}.dll.</summary>
    private static string LocateDll(string project)
    {
        var configuration = typeof(ChildProcess).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration is { Length: > 0 } c ? c : "Debug";
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "TwoPC.sln")))
        {
            directory = directory.Parent;
        }

        if (directory is null)
        {
            throw new InvalidOperationException($"TwoPC.sln not found above {AppContext.BaseDirectory}: run the demo from the repository.");
        }

        var name = Path.GetFileName(project);
        var dll = Path.Combine(directory.FullName, project, "bin", configuration, "net10.0", name + ".dll");
        return File.Exists(dll)
            ? dll
            : throw new FileNotFoundException($"{dll} is missing: build the demo (dotnet build Samples/TwoPC.Samples.Demo -c {configuration}), which builds it.", dll);
    }
}
