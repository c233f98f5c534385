using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TwoPC.Wal;

namespace TwoPC.Cli;

/// <summary>Writes a <see cref="TransactionLogInspection"/> as readable tables or as JSON; the verdicts are Core's.</summary>
internal static class InspectionReport
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public static void WriteText(TransactionLogInspection inspection, bool includeRecords, TextWriter output)
    {
        output.WriteLine($"Log directory: {inspection.Directory}");
        output.WriteLine($"Node id:       {inspection.NodeId ?? "(none recorded)"}");
        output.WriteLine($"Current:       {(inspection.CurrentSegment is { } current ? WalFileName(current) : "(no readable manifest)")}");
        output.WriteLine();
        output.WriteLine("Segments");
        if (inspection.Segments.Count == 0)
        {
            output.WriteLine("  (none)");
        }
        else
        {
            WriteTable(
                output,
                ["File", "Number", "Role", "Size", "Header", "Records", "First offset", "Last offset"],
                inspection.Segments.Select(s => new[]
                {
                    Path.GetFileName(s.Path),
                    Number(s.Number),
                    s.IsCurrent ? "current" : "leftover",
                    Number(s.Size),
                    s.HeaderOk ? "ok" : $"bad: {s.HeaderProblem}",
                    Number(s.Records),
                    s.FirstOffset is { } first ? Number(first) : "-",
                    s.LastOffset is { } last ? Number(last) : "-",
                }));
        }

        if (includeRecords)
        {
            output.WriteLine();
            output.WriteLine("Records");
            if (inspection.Records.Count == 0)
            {
                output.WriteLine("  (none)");
            }
            else
            {
                WriteTable(
                    output,
                    ["Segment", "Offset", "Type", "Gtrid", "Branches", "Detail"],
                    inspection.Records.Select(r => new[]
                    {
                        r.Segment,
                        Number(r.Offset),
                        r.Type,
                        r.Gtrid ?? "-",
                        r.Branches ?? "-",
                        r.Detail ?? string.Empty,
                    }));
            }
        }

        output.WriteLine();
        output.WriteLine("Verdict");
        if (inspection.Problems.Count == 0)
        {
            output.WriteLine("  CLEAN: the manifest, the current segment and every batch verify.");
        }

        foreach (var problem in inspection.Problems)
        {
            output.WriteLine($"  {Verdict(problem)}");
        }

        output.WriteLine();
        output.WriteLine("What recovery would do");
        if (inspection.RecoveryRefuses)
        {
            output.WriteLine("  REFUSE TO START: the log is corrupt (see above); restore or investigate before starting the coordinator.");
            output.WriteLine("  State read before the damage:");
        }
        else
        {
            foreach (var problem in inspection.Problems)
            {
                output.WriteLine(problem.Kind == LogProblemKind.TornTail
                    ? $"  Truncate {Path.GetFileName(problem.Path)} to {problem.Offset} bytes (drop {problem.DroppedBytes})."
                    : $"  Delete {Path.GetFileName(problem.Path)} ({problem.DroppedBytes} bytes).");
            }

            output.WriteLine($"  Start epoch {inspection.NextEpoch}.");
        }

        output.WriteLine($"  Pending commit decisions to re-drive: {inspection.PendingDecisions.Count}");
        foreach (var decision in inspection.PendingDecisions)
        {
            output.WriteLine($"    {decision.TransactionId}  decided {TransactionLogInspector.FormatTime(decision.DecidedAt)}  {decision.Branches.Count} branch(es)");
            foreach (var branch in decision.Branches)
            {
                output.WriteLine($"      {branch.ResourceManager}  {branch.Xid}");
            }
        }

        output.WriteLine($"  Heuristic outcomes on record: {inspection.Heuristics.Count}");
        foreach (var heuristic in inspection.Heuristics)
        {
            output.WriteLine($"    {heuristic.TransactionId}  {heuristic.Kind}  recorded {TransactionLogInspector.FormatTime(heuristic.RecordedAt)}  reason: {heuristic.Reason}");
            foreach (var branch in heuristic.Branches)
            {
                output.WriteLine($"      {branch.ResourceManager}  {branch.Xid}  {(branch.Outcome?.ToString() ?? "unknown")}");
            }
        }

        output.WriteLine();
        output.WriteLine($"Exit code {ExitCode(inspection)}: {ExitCode(inspection) switch
        {
            Program.ExitClean => "clean",
            Program.ExitTornTail => "torn tail or leftover files (recovery repairs them)",
            _ => "corruption (recovery would refuse to start)",
        }}");
    }

    public static void WriteJson(TransactionLogInspection inspection, bool includeRecords, TextWriter output)
    {
        var segments = new JsonArray();
        foreach (var s in inspection.Segments)
        {
            segments.Add(new JsonObject
            {
                ["file"] = Path.GetFileName(s.Path),
                ["path"] = s.Path,
                ["number"] = s.Number,
                ["current"] = s.IsCurrent,
                ["size"] = s.Size,
                ["headerOk"] = s.HeaderOk,
                ["headerProblem"] = s.HeaderProblem,
                ["records"] = s.Records,
                ["firstOffset"] = s.FirstOffset,
                ["lastOffset"] = s.LastOffset,
            });
        }

        var problems = new JsonArray();
        foreach (var p in inspection.Problems)
        {
            problems.Add(new JsonObject
            {
                ["kind"] = p.Kind.ToString(),
                ["file"] = Path.GetFileName(p.Path),
                ["path"] = p.Path,
                ["offset"] = p.Offset,
                ["droppedBytes"] = p.DroppedBytes,
                ["description"] = p.Description,
                ["verdict"] = Verdict(p),
            });
        }

        var pending = new JsonArray();
        foreach (var d in inspection.PendingDecisions)
        {
            var branches = new JsonArray();
            foreach (var b in d.Branches)
            {
                branches.Add(new JsonObject { ["resourceManager"] = b.ResourceManager, ["xid"] = b.Xid.ToString() });
            }

            pending.Add(new JsonObject { ["gtrid"] = d.TransactionId.ToString(), ["decidedAt"] = d.DecidedAt, ["branches"] = branches });
        }

        var heuristics = new JsonArray();
        foreach (var h in inspection.Heuristics)
        {
            var branches = new JsonArray();
            foreach (var b in h.Branches)
            {
                branches.Add(new JsonObject { ["resourceManager"] = b.ResourceManager, ["xid"] = b.Xid.ToString(), ["outcome"] = b.Outcome?.ToString() });
            }

            heuristics.Add(new JsonObject
            {
                ["gtrid"] = h.TransactionId.ToString(),
                ["kind"] = h.Kind.ToString(),
                ["reason"] = h.Reason,
                ["recordedAt"] = h.RecordedAt,
                ["branches"] = branches,
            });
        }

        var root = new JsonObject
        {
            ["directory"] = inspection.Directory,
            ["nodeId"] = inspection.NodeId,
            ["currentSegment"] = inspection.CurrentSegment,
            ["exitCode"] = ExitCode(inspection),
            ["segments"] = segments,
        };
        if (includeRecords)
        {
            var records = new JsonArray();
            foreach (var r in inspection.Records)
            {
                records.Add(new JsonObject
                {
                    ["segment"] = r.Segment,
                    ["offset"] = r.Offset,
                    ["type"] = r.Type,
                    ["gtrid"] = r.Gtrid,
                    ["branches"] = r.Branches,
                    ["detail"] = r.Detail,
                });
            }

            root["records"] = records;
        }

        root["problems"] = problems;
        root["recovery"] = new JsonObject
        {
            ["refusesToStart"] = inspection.RecoveryRefuses,
            ["epoch"] = inspection.RecoveryRefuses ? null : inspection.NextEpoch,
            ["pendingDecisions"] = pending,
            ["heuristics"] = heuristics,
        };
        output.WriteLine(root.ToJsonString(Indented));
    }

    /// <summary>0 clean, 1 torn tail or leftovers (recovery repairs them), 2 corruption (recovery refuses to start).</summary>
    public static int ExitCode(TransactionLogInspection inspection) =>
        inspection.RecoveryRefuses ? Program.ExitCorrupt : inspection.Problems.Count > 0 ? Program.ExitTornTail : Program.ExitClean;

    private static string Verdict(LogProblem problem) => problem.Kind switch
    {
        LogProblemKind.TornTail => $"TORN TAIL at offset {problem.Offset} of {problem.Path}: {problem.Description}; recovery would drop {problem.DroppedBytes} bytes (if a coordinator is running, this may be a write in progress).",
        LogProblemKind.Leftover => $"LEFTOVER {problem.Path}: {problem.Description}; recovery would delete it ({problem.DroppedBytes} bytes).",
        _ => $"CORRUPTION at offset {problem.Offset} of {problem.Path}: {problem.Description}; recovery would refuse to start.",
    };

    private static string WalFileName(ulong number) => $"wal-{number:D16}.seg";

    private static string Number(long value) => value.ToString(CultureInfo.InvariantCulture);

    private static string Number(ulong value) => value.ToString(CultureInfo.InvariantCulture);

    internal static void WriteTable(TextWriter output, string[] headers, IEnumerable<string[]> rows)
    {
        var all = rows.ToList();
        var widths = headers.Select(h => h.Length).ToArray();
        foreach (var row in all)
        {
            for (var i = 0; i < row.Length; i++)
            {
                widths[i] = Math.Max(widths[i], row[i].Length);
            }
        }

        WriteRow(output, headers, widths);
        WriteRow(output, widths.Select(w => new string('-', w)).ToArray(), widths);
        foreach (var row in all)
        {
            WriteRow(output, row, widths);
        }
    }

    private static void WriteRow(TextWriter output, string[] cells, int[] widths)
    {
        var line = new StringBuilder("  ");
        for (var i = 0; i < cells.Length; i++)
        {
            line.Append(i == cells.Length - 1 ? cells[i] : cells[i].PadRight(widths[i] + 2));
        }

        output.WriteLine(line.ToString().TrimEnd());
    }
}
