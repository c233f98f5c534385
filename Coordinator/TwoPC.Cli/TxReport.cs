using System.Globalization;
using System.Text.Json;
using TwoPC.Client;

namespace TwoPC.Cli;

/// <summary>Writes the answers of the admin API as aligned tables, or as JSON (the API's own camelCase contract).</summary>
internal static class TxReport
{
    private static readonly JsonSerializerOptions Json = new(TwoPCJson.Options) { WriteIndented = true };

    public static void WriteList(IReadOnlyList<InDoubtBranchDto> inDoubt, IReadOnlyList<HeuristicDto> heuristics, bool asJson, TextWriter output)
    {
        if (asJson)
        {
            WriteJson(new { inDoubt, heuristics }, output);
            return;
        }

        output.WriteLine($"In doubt ({inDoubt.Count})");
        if (inDoubt.Count == 0)
        {
            output.WriteLine("  (none)");
        }
        else
        {
            InspectionReport.WriteTable(
                output,
                ["Transaction", "Resource manager", "Xid", "State", "Age", "Detail"],
                inDoubt.Select(b => new[] { b.TransactionId ?? "-", b.ResourceManager, b.Xid, b.Resolution, Age(b.AgeSeconds), b.Detail ?? string.Empty }));
        }

        output.WriteLine();
        output.WriteLine($"Heuristic outcomes ({heuristics.Count})");
        if (heuristics.Count == 0)
        {
            output.WriteLine("  (none)");
        }
        else
        {
            InspectionReport.WriteTable(
                output,
                ["Transaction", "Kind", "Recorded", "Branches", "Reason"],
                heuristics.Select(h => new[]
                {
                    h.TransactionId,
                    h.Kind.ToString(),
                    Instant(h.RecordedAt),
                    string.Join(", ", h.Branches.Select(b => $"{b.ResourceManager}:{b.Outcome?.ToString() ?? "unknown"}")),
                    h.Reason,
                }));
        }
    }

    public static void WriteStatus(TransactionStatusDto status, bool asJson, TextWriter output)
    {
        if (asJson)
        {
            WriteJson(status, output);
            return;
        }

        output.WriteLine($"Transaction  {status.Id}");
        output.WriteLine($"State        {status.State}{(status.State == TransactionStateDto.Unknown ? " (no record: under presumed abort, not committed)" : string.Empty)}");
        output.WriteLine($"Deadline     {(status.Deadline is { } deadline ? Instant(deadline) : "-")}");
        if (status.Outcome is { } outcome)
        {
            output.WriteLine($"Outcome      {outcome.Kind}{(outcome.Reason is { } reason ? ": " + reason : string.Empty)}");
        }

        var branches = status.Branches ?? status.Outcome?.Branches ?? [];
        output.WriteLine();
        output.WriteLine($"Branches ({branches.Count})");
        if (branches.Count == 0)
        {
            output.WriteLine("  (none)");
            return;
        }

        InspectionReport.WriteTable(
            output,
            ["Resource manager", "Xid", "Vote", "Outcome"],
            branches.Select(b => new[] { b.ResourceManager, b.Xid, b.Vote?.ToString() ?? "-", b.Outcome?.ToString() ?? "-" }));
    }

    public static void WriteForced(ForcedBranchDto result, bool asJson, TextWriter output)
    {
        if (asJson)
        {
            WriteJson(result, output);
            return;
        }

        output.WriteLine($"{result.Outcome}: {result.Message}");
    }

    public static void WriteForgotten(string transactionId, bool asJson, TextWriter output)
    {
        if (asJson)
        {
            WriteJson(new { forgotten = transactionId }, output);
            return;
        }

        output.WriteLine($"Forgot the heuristic outcome of {transactionId}.");
    }

    public static void WriteRecovery(RecoveryReportDto report, bool asJson, TextWriter output)
    {
        if (asJson)
        {
            WriteJson(report, output);
            return;
        }

        output.WriteLine($"Recovery pass: {report.Branches.Count} in-doubt branches seen, {report.LeftInDoubt} left in doubt.");
        if (report.Branches.Count > 0)
        {
            InspectionReport.WriteTable(
                output,
                ["Resource manager", "Xid", "Resolution", "Age"],
                report.Branches.Select(b => new[] { b.ResourceManager, b.Xid, b.Resolution, Age(b.AgeSeconds) }));
        }

        if (report.FailedResourceManagers.Count > 0)
        {
            output.WriteLine($"Scans failed (retried next pass): {string.Join(", ", report.FailedResourceManagers)}");
        }
    }

    /// <summary>A short, human age: <c>4.2s</c>, <c>3m05s</c>, <c>2h07m</c>, <c>3d04h</c>.</summary>
    internal static string Age(double seconds)
    {
        var age = TimeSpan.FromSeconds(Math.Max(0, seconds));
        return age.TotalSeconds < 60 ? age.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture) + "s"
            : age.TotalMinutes < 60 ? string.Create(CultureInfo.InvariantCulture, $"{(int)age.TotalMinutes}m{age.Seconds:00}s")
            : age.TotalHours < 24 ? string.Create(CultureInfo.InvariantCulture, $"{(int)age.TotalHours}h{age.Minutes:00}m")
            : string.Create(CultureInfo.InvariantCulture, $"{(int)age.TotalDays}d{age.Hours:00}h");
    }

    private static string Instant(DateTimeOffset instant) => instant.ToUniversalTime().ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    private static void WriteJson<T>(T value, TextWriter output) => output.WriteLine(JsonSerializer.Serialize(value, Json));
}
