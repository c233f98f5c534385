using TwoPC.Testing;

namespace TwoPC.Samples.Tests;

/// <summary>
/// The demo as a user runs it: a separate process that starts its own PostgreSQL and RabbitMQ, the coordinator and
/// the sample services as child processes, and runs every scenario (a smaller load run) against them.
/// </summary>
public sealed class DemoTests
{
    [Fact]
    public async Task Demo_runs_every_scenario_and_every_invariant_holds()
    {
        using var demo = CrashHostProcess.StartProgram(Path.Combine("Samples", "TwoPC.Samples.Demo"), ["--load-count", "60", "--concurrency", "8"]);

        var exitCode = await demo.WaitForExitAsync(TimeSpan.FromMinutes(5));

        var output = demo.StdoutLines;
        Assert.True(exitCode == 0, $"The demo exited with {exitCode}.\n{demo.Describe()}");
        Assert.DoesNotContain(output, l => l.Contains("[FAILED]", StringComparison.Ordinal));
        Assert.Contains(output, l => l.StartsWith("All expectations and invariants held", StringComparison.Ordinal));
        foreach (var scenario in new[] { "success", "funds", "stock", "crash", "duplicate", "load", "embedded" })
        {
            Assert.Contains(output, l => l.TrimStart().StartsWith(scenario, StringComparison.Ordinal) && l.Contains(" ok ", StringComparison.Ordinal));
        }

        Assert.Contains(output, l => l.Contains("[ok] money conserved", StringComparison.Ordinal));
        Assert.Contains(output, l => l.Contains("[ok] no prepared transaction left in any database", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Demo_rejects_an_unknown_scenario()
    {
        using var demo = CrashHostProcess.StartProgram(Path.Combine("Samples", "TwoPC.Samples.Demo"), ["--scenario", "nonsense"]);

        var exitCode = await demo.WaitForExitAsync(TimeSpan.FromMinutes(1));

        Assert.NotEqual(0, exitCode);
    }
}
