using System.Globalization;

namespace TwoPC.Verify;

/// <summary>One property checked after the run: holds or not, with the counts that say so.</summary>
internal sealed record Check(string Name, bool Holds, string Detail);

/// <summary>What the databases, the broker and the recovered coordinator hold after healing, and the checks against the history.</summary>
internal static class Checks
{
    public static async Task<IReadOnlyList<Check>> RunAsync(RunSettings settings, History history, FinalState final, CancellationToken cancellationToken)
    {
        var databases = settings.Databases;
        var checks = new List<Check>();

        var total = 0L;
        var negative = 0;
        var rows = new Dictionary<string, int>[databases.Count];
        for (var i = 0; i < databases.Count; i++)
        {
            total += await Bank.TotalBalanceAsync(databases[i], cancellationToken);
            negative += await Bank.NegativeAccountsAsync(databases[i], cancellationToken);
            rows[i] = await Bank.TransferRowsAsync(databases[i], cancellationToken);
        }

        var expected = settings.Accounts * settings.InitialBalance;
        checks.Add(new("money conserved", total == expected, string.Create(CultureInfo.InvariantCulture, $"total {total}, expected {expected}")));
        checks.Add(new("no account below zero", negative == 0, string.Create(CultureInfo.InvariantCulture, $"{negative} accounts below zero")));

        // Every transfer: a row in both databases it touched, or in none (and never twice, never elsewhere).
        var operations = history.Operations.ToDictionary(o => o.Id, StringComparer.Ordinal);
        var ids = rows.SelectMany(r => r.Keys).Concat(operations.Keys).ToHashSet(StringComparer.Ordinal);
        var present = new HashSet<string>(StringComparer.Ordinal);
        var partial = new List<string>();
        foreach (var id in ids)
        {
            var counts = rows.Select(r => r.GetValueOrDefault(id)).ToArray();
            if (counts.All(c => c == 0))
            {
                continue;
            }

            var expectedIn = operations.TryGetValue(id, out var op)
                ? new[] { Bank.DatabaseOf(op.From, databases.Count), Bank.DatabaseOf(op.To, databases.Count) }
                : null;
            var whole = expectedIn is null
                ? counts.Count(c => c == 1) == 2 && counts.All(c => c <= 1)
                : counts.Select((c, db) => c == (expectedIn.Contains(db) ? 1 : 0)).All(ok => ok);
            if (whole)
            {
                present.Add(id);
            }
            else
            {
                partial.Add(id);
            }
        }

        checks.Add(new("all-or-nothing: every transfer in all its databases or in none", partial.Count == 0,
            partial.Count == 0 ? $"{present.Count} present in both, {ids.Count - present.Count} in neither" : $"{partial.Count} partial: {Sample(partial)}"));

        var lostCommits = operations.Values.Where(o => o.Outcome == "Committed" && !present.Contains(o.Id)).Select(o => o.Id).ToList();
        checks.Add(new("durability: every transfer the client saw Committed is present", lostCommits.Count == 0,
            lostCommits.Count == 0 ? $"{operations.Values.Count(o => o.Outcome == "Committed")} committed, all present" : $"{lostCommits.Count} missing: {Sample(lostCommits)}"));

        var ghostRollbacks = operations.Values.Where(o => o.Outcome == "RolledBack" && present.Contains(o.Id)).Select(o => o.Id).ToList();
        checks.Add(new("no transfer the client saw RolledBack is present", ghostRollbacks.Count == 0,
            ghostRollbacks.Count == 0 ? $"{operations.Values.Count(o => o.Outcome == "RolledBack")} rolled back, none present" : $"{ghostRollbacks.Count} present: {Sample(ghostRollbacks)}"));

        var designedButPresent = operations.Values.Where(o => o.DesignedToFail && present.Contains(o.Id)).Select(o => o.Id).ToList();
        checks.Add(new("every transfer designed to vote No is absent", designedButPresent.Count == 0,
            designedButPresent.Count == 0 ? $"{operations.Values.Count(o => o.DesignedToFail)} designed No, none present" : $"{designedButPresent.Count} present: {Sample(designedButPresent)}"));

        // Exactly one consumed message per present transfer, none for any other.
        var consumed = await Bank.ConsumedAsync(databases[0], cancellationToken);
        var missing = present.Where(id => consumed.GetValueOrDefault(id) == 0).ToList();
        var duplicated = consumed.Where(c => c.Value > 1).Select(c => c.Key).ToList();
        var unexpected = consumed.Keys.Where(id => !present.Contains(id)).ToList();
        checks.Add(new("exactly once: one consumed message per committed transfer, none for others",
            missing.Count == 0 && duplicated.Count == 0 && unexpected.Count == 0,
            $"{consumed.Values.Sum()} consumed for {present.Count} transfers; missing {missing.Count}{Sample(missing, " ")}, duplicated {duplicated.Count}{Sample(duplicated, " ")}, for absent transfers {unexpected.Count}{Sample(unexpected, " ")}"));

        var prepared = new List<string>();
        foreach (var database in databases)
        {
            prepared.AddRange(await Bank.PreparedAsync(database, cancellationToken));
        }

        checks.Add(new("no prepared transaction left", prepared.Count == 0, $"{prepared.Count} left{Sample(prepared, ": ")}"));
        checks.Add(new("nothing dead-lettered or parked", final.DeadLettered == 0 && final.Parked == 0, $"{final.DeadLettered} dead-lettered, {final.Parked} parked"));
        checks.Add(new("no heuristic outcome", final.Heuristics == 0 && !operations.Values.Any(o => o.Outcome?.StartsWith("Heuristic", StringComparison.Ordinal) == true),
            $"{final.Heuristics} heuristic records after recovery, {operations.Values.Count(o => o.Outcome?.StartsWith("Heuristic", StringComparison.Ordinal) == true)} heuristic outcomes seen"));
        checks.Add(new("recovery finished in time", final.RecoveryFinished, final.RecoveryFinished ? $"in {final.RecoveryMilliseconds} ms" : "recovery did not finish within its bound"));
        checks.Add(await CommitPathAsync(settings, history, cancellationToken));
        return checks;
    }

    /// <summary>
    /// The run tested the commit path it claims: with the last-resource commit on, decisions were marker commits in the
    /// first database (the last resource: every transfer enlists it first) and none was forced to the coordinator's log;
    /// off, the reverse. Counted by the workers' coordinators (<see cref="LastResourceCounters"/>); the marker table of
    /// the first database is reported beside.
    /// </summary>
    private static async Task<Check> CommitPathAsync(RunSettings settings, History history, CancellationToken cancellationToken)
    {
        var paths = history.Paths;
        var (exists, committedMarkers, abortedMarkers) = await Bank.MarkersAsync(settings.Databases[0], cancellationToken);
        var holds = settings.LastResourceCommitOn
            ? paths.MarkerCommits > 0 && paths.LogDecisions == 0
            : paths.MarkerCommits == 0 && paths.LogDecisions > 0;
        return new($"commit path: last-resource commit {settings.LastResourceCommitText}", holds, string.Create(CultureInfo.InvariantCulture,
            $"{paths.MarkerCommits} marker commits, {paths.LogDecisions} decisions forced to the log, for {paths.Committed} committed (workers' metrics); {paths.Fences} fences, {paths.MarkersRedriven} markers re-driven; " +
            $"twopc.commit_markers in the first database: {(exists ? $"{committedMarkers} 'C' left, {abortedMarkers} 'A' (fences)" : "absent")}"));
    }

    private static string Sample(List<string> ids, string prefix = "") =>
        ids.Count == 0 ? string.Empty : prefix + string.Join(", ", ids.Order(StringComparer.Ordinal).Take(5)) + (ids.Count > 5 ? ", …" : string.Empty);
}

/// <summary>What the heal phase found: the recovered coordinator's heuristics, the broker's dead-letter and parking queues.</summary>
internal sealed record FinalState(bool RecoveryFinished, long RecoveryMilliseconds, int Heuristics, uint DeadLettered, uint Parked);
