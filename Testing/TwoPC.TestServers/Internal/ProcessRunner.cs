using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace TwoPC.TestServers.Internal;

/// <summary>The outcome of one external command run by <see cref="ProcessRunner"/>.</summary>
internal sealed record ProcessResult(string CommandLine, int ExitCode, string Output, TimeSpan Duration, bool TimedOut)
{
    public bool Succeeded => !TimedOut && ExitCode == 0;

    /// <summary>A multi-line description for error messages: command, exit code or timeout, duration, output tail.</summary>
    public string Describe(int outputLines = 40)
    {
        var status = TimedOut
            ? string.Create(CultureInfo.InvariantCulture, $"timed out after {Duration.TotalSeconds:F1} s (killed)")
            : string.Create(CultureInfo.InvariantCulture, $"exited with code {ExitCode} after {Duration.TotalSeconds:F1} s");
        var builder = new StringBuilder()
            .Append("  command: ").AppendLine(CommandLine)
            .Append("  result:  ").AppendLine(status);
        var tail = LogTail.LastLines(Output, outputLines);
        builder.AppendLine(tail.Count == 0 ? "  output:  (none)" : "  output (tail):");
        foreach (var line in tail)
        {
            builder.Append("    ").AppendLine(line);
        }

        return builder.ToString();
    }
}

/// <summary>
/// Runs an external command with a hard timeout, no stdin (so nothing can prompt) and stdout and
/// stderr captured together. On timeout or cancellation the whole process tree is killed.
/// </summary>
internal static class ProcessRunner
{
    private const int MaxCapturedChars = 256 * 1024;

    public static async Task<ProcessResult> RunAsync(
        string fileName,
        IReadOnlyList<string> arguments,
        TimeSpan timeout,
        string? workingDirectory = null,
        IReadOnlyDictionary<string, string>? environment = null,
        CancellationToken cancellationToken = default)
    {
        var startInfo = new ProcessStartInfo(fileName)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            CreateNoWindow = true,
        };
        foreach (var argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        if (workingDirectory is not null)
        {
            startInfo.WorkingDirectory = workingDirectory;
        }

        if (environment is not null)
        {
            foreach (var (key, value) in environment)
            {
                startInfo.Environment[key] = value;
            }
        }

        var commandLine = FormatCommandLine(fileName, arguments);
        var output = new StringBuilder();
        void Append(string? line)
        {
            if (line is null)
            {
                return;
            }

            lock (output)
            {
                if (output.Length > MaxCapturedChars)
                {
                    // Keep the tail: that is where the error is.
                    output.Remove(0, output.Length - (MaxCapturedChars / 2));
                }

                output.AppendLine(line);
            }
        }

        using var process = new Process { StartInfo = startInfo };
        process.OutputDataReceived += (_, e) => Append(e.Data);
        process.ErrorDataReceived += (_, e) => Append(e.Data);

        var stopwatch = Stopwatch.StartNew();
        try
        {
            process.Start();
        }
        catch (Exception ex) when (ex is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            throw new TestServerException($"Could not start '{commandLine}': {ex.Message}", ex);
        }

        process.StandardInput.Close();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        using var timeoutSource = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeoutSource.CancelAfter(timeout);
        var timedOut = false;
        try
        {
            await process.WaitForExitAsync(timeoutSource.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            Kill(process);
            if (cancellationToken.IsCancellationRequested)
            {
                throw;
            }

            timedOut = true;
            // Give the killed tree a moment to go, without waiting on pipes a grandchild may hold.
            using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            try
            {
                await process.WaitForExitAsync(grace.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }
        }

        stopwatch.Stop();
        string text;
        lock (output)
        {
            text = output.ToString();
        }

        return new ProcessResult(commandLine, timedOut || !process.HasExited ? -1 : process.ExitCode, text, stopwatch.Elapsed, timedOut);
    }

    /// <summary>Synchronous variant for process-exit handlers, where awaiting is not an option.</summary>
    public static ProcessResult Run(string fileName, IReadOnlyList<string> arguments, TimeSpan timeout, string? workingDirectory = null)
    {
        var task = Task.Run(() => RunAsync(fileName, arguments, timeout, workingDirectory));
        return task.GetAwaiter().GetResult();
    }

    public static string FormatCommandLine(string fileName, IEnumerable<string> arguments)
        => string.Join(' ', new[] { fileName }.Concat(arguments).Select(Quote));

    private static string Quote(string value)
        => value.Length > 0 && value.All(c => char.IsAsciiLetterOrDigit(c) || "-_./=:,@+%".Contains(c, StringComparison.Ordinal))
            ? value
            : "'" + value.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    private static void Kill(Process process)
    {
        try
        {
            process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // Already exited.
        }
        catch (System.ComponentModel.Win32Exception)
        {
        }
    }
}
