using System.Text.RegularExpressions;
using TwoPC.Testing;

namespace TwoPC.Coordinator.Server.Tests;

/// <summary>
/// Issue 15 item 9(b): a bad setting stops the server with its message printed once (the host's "Hosting failed to
/// start" log), and exit code 1 — not the same message again as an unhandled exception with an aborted process.
/// </summary>
public sealed class Item09StartupErrorTests : IDisposable
{
    private readonly DirectoryInfo _log = Directory.CreateTempSubdirectory("twopc-startup-error-");

    public void Dispose() => _log.Delete(recursive: true);

    [Theory]
    [InlineData("--TwoPC:NodeId=Bad_Node", "TwoPC:NodeId must be")]
    [InlineData("--TwoPC:RollbackAttempt=2", "TwoPC:RollbackAttempt is not a TwoPC setting")]
    public async Task Item09_a_bad_setting_is_reported_once_and_the_server_exits_with_1(string setting, string message)
    {
        using var server = CrashHostProcess.StartProgram(Path.Combine("Coordinator", "TwoPC.Coordinator.Server"), [
            "--Urls=http://127.0.0.1:0",
            "--TwoPC:NodeId=startup-test",
            $"--TwoPC:LogDirectory={_log.FullName}",
            setting,
            "--Coordinator:Authentication:AllowAnonymous=true",
        ]);

        var exitCode = await server.WaitForExitAsync(TimeSpan.FromMinutes(1));

        var output = server.Describe();
        Assert.True(exitCode == 1, $"exit code {exitCode}\n{output}");
        Assert.True(Regex.Count(output, Regex.Escape(message)) == 1, $"'{message}' should appear once:\n{output}");
        Assert.DoesNotContain("Unhandled exception", output, StringComparison.Ordinal);
    }
}
