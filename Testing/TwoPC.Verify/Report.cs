using System.Globalization;
using System.Text.Json;

namespace TwoPC.Verify;

/// <summary>The run's report: operations, faults, recovery times, throughput, and each check ✓/✗.</summary>
internal sealed record Report(RunSettings Settings, IReadOnlyCollection<Operation> Operations, IReadOnlyList<Fault> Faults, TimeSpan Elapsed,
    FinalState Final, IReadOnlyList<Check> Checks)
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public bool Passed => Checks.All(c => c.Holds);

    public void WriteText(TextWriter output)
    {
        var committed = Operations.Count(o => o.Outcome == "Committed");
        var rolledBack = Operations.Count(o => o.Outcome == "RolledBack");
        var unknown = Operations.Count(o => o.Outcome is null);
        var heuristic = Operations.Count - committed - rolledBack - unknown;
        var restarts = Faults.Where(f => f.Kind == "coordinator" && f.RecoveryMilliseconds is not null).Select(f => f.RecoveryMilliseconds!.Value).Order().ToList();
        var inv = CultureInfo.InvariantCulture;
        output.WriteLine();
        output.WriteLine(string.Create(inv, $"TwoPC verify: seed {Settings.Seed}, {Elapsed.TotalSeconds:0} s, {Settings.Databases.Count} databases, {Settings.Accounts} accounts, concurrency {Settings.Concurrency}, last-resource commit {Settings.LastResourceCommitText}"));
        output.WriteLine(string.Create(inv, $"operations   attempted {Operations.Count}, committed {committed}, rolled back {rolledBack} (designed No {Operations.Count(o => o.DesignedToFail)}), unknown {unknown}, heuristic {heuristic}"));
        output.WriteLine(string.Create(inv, $"faults       {Faults.Count}: {string.Join(", ", Faults.GroupBy(f => f.Kind).OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => $"{g.Key} {g.Count()}"))}"));
        if (restarts.Count > 0)
        {
            output.WriteLine(string.Create(inv, $"recovery     coordinator killed {restarts.Count}×; restarted and recovered in median {restarts[restarts.Count / 2]} ms, max {restarts[^1]} ms; final recovery {Final.RecoveryMilliseconds} ms"));
        }

        output.WriteLine(string.Create(inv, $"throughput   {committed / Math.Max(Elapsed.TotalSeconds, 1):0.0} committed transfers/s"));
        output.WriteLine("checks");
        foreach (var check in Checks)
        {
            output.WriteLine($"  {(check.Holds ? "✓" : "✗")} {check.Name}: {check.Detail}");
        }

        output.WriteLine(Passed ? "PASSED: every check holds." : "FAILED: a check does not hold (the history file has every operation).");
    }

    public void WriteJson(TextWriter output)
    {
        var json = new
        {
            seed = Settings.Seed,
            seconds = Math.Round(Elapsed.TotalSeconds, 1),
            databases = Settings.Databases.Count,
            accounts = Settings.Accounts,
            concurrency = Settings.Concurrency,
            lastResourceCommit = Settings.LastResourceCommitText,
            operations = new
            {
                attempted = Operations.Count,
                committed = Operations.Count(o => o.Outcome == "Committed"),
                rolledBack = Operations.Count(o => o.Outcome == "RolledBack"),
                designedNo = Operations.Count(o => o.DesignedToFail),
                unknown = Operations.Count(o => o.Outcome is null),
            },
            faults = Faults.GroupBy(f => f.Kind).ToDictionary(g => g.Key, g => g.Count()),
            restartMilliseconds = Faults.Where(f => f.RecoveryMilliseconds is not null).Select(f => new { f.Kind, ms = f.RecoveryMilliseconds }),
            finalRecoveryMilliseconds = Final.RecoveryMilliseconds,
            checks = Checks.Select(c => new { c.Name, c.Holds, c.Detail }),
            passed = Passed,
        };
        output.WriteLine(JsonSerializer.Serialize(json, Indented));
    }
}
