using System.Diagnostics;
using System.Reflection;

namespace TwoPC.Verify;

/// <summary>
/// A worker or consumer process of this same program: its stdout lines go to <see cref="LineReceived"/>, its stderr to
/// a log file; <see cref="Kill"/> is SIGKILL (the fault the checker injects), never a polite stop.
/// </summary>
internal sealed class ChildProcess : IDisposable
{
    private readonly Process _process;
    private readonly StreamWriter _stderr;
    private readonly TaskCompletionSource<string> _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Task _pump;

    private ChildProcess(Process process, StreamWriter stderr, Action<string> lineReceived)
    {
        _process = process;
        _stderr = stderr;
        LineReceived = lineReceived;
        _pump = Task.Run(PumpStdoutAsync);
        _process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (_stderr)
                {
                    _stderr.WriteLine(e.Data);
                }
            }
        };
        _process.BeginErrorReadLine();
    }

    public Action<string> LineReceived { get; }

    public int Id => _process.Id;

    /// <summary>The first line starting with <c>ready</c>.</summary>
    public Task<string> Ready => _ready.Task;

    public bool HasExited => _process.HasExited;

    public static ChildProcess Start(IReadOnlyList<string> arguments, string stderrFile, Action<string> lineReceived)
    {
        var start = new ProcessStartInfo { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        // Run as `twopc-verify …` (the apphost) or as `dotnet twopc-verify.dll …`, whichever started this process.
        var host = Environment.ProcessPath ?? throw new InvalidOperationException("The path of this process is unknown.");
        start.FileName = host;
        if (string.Equals(Path.GetFileNameWithoutExtension(host), "dotnet", StringComparison.Ordinal))
        {
            start.ArgumentList.Add(Assembly.GetExecutingAssembly().Location);
        }

        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        var stderr = new StreamWriter(stderrFile, append: true) { AutoFlush = true };
        var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {host}.");
        return new ChildProcess(process, stderr, lineReceived);
    }

    /// <summary>SIGKILL, then waits until the process is gone and its output is read to the end.</summary>
    public async Task KillAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: false); // SIGKILL on Linux
        }

        await _process.WaitForExitAsync();
        await _pump;
    }

    /// <summary>Waits for the process to end by itself (a recover-only worker).</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            await KillAsync();
            throw new TimeoutException($"Process {_process.Id} did not finish within {timeout.TotalSeconds:0} s.");
        }

        await _pump;
        return _process.ExitCode;
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
        }

        _process.Dispose();
        lock (_stderr)
        {
            _stderr.Dispose();
        }
    }

    private async Task PumpStdoutAsync()
    {
        // A line cut off by the kill is incomplete: only whole lines (ending in a newline) are reported.
        var reader = _process.StandardOutput;
        while (await reader.ReadLineAsync() is { } line)
        {
            if (line.StartsWith("ready", StringComparison.Ordinal))
            {
                _ready.TrySetResult(line);
            }

            LineReceived(line);
        }

        _ready.TrySetException(new InvalidOperationException("The process ended before it was ready (see its log)."));
    }
}
