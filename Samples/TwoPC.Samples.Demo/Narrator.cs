using System.Globalization;
using System.Text.RegularExpressions;

namespace TwoPC.Samples.Demo;

/// <summary>Writes the demo's story to stdout and keeps score of its expectations.</summary>
internal sealed partial class Narrator
{
    private readonly List<string> _failures = [];
    private readonly TextWriter _out = Console.Out;

    public IReadOnlyList<string> Failures => _failures;

    public void Line(string text = "") => _out.WriteLine(text);

    public void Heading(string title)
    {
        _out.WriteLine();
        _out.WriteLine($"== {title} " + new string('=', Math.Max(3, 76 - title.Length)));
    }

    public void Story(string text) => _out.WriteLine("  " + text);

    /// <summary>Prints "[ok] what" or "[FAILED] what" and remembers a failure.</summary>
    public bool Expect(bool condition, string what, string? detail = null)
    {
        _out.WriteLine(condition ? $"  [ok] {what}" : $"  [FAILED] {what}{(detail is null ? string.Empty : " -- " + detail)}");
        if (!condition)
        {
            _failures.Add(what + (detail is null ? string.Empty : " -- " + detail));
        }

        return condition;
    }

    public void Fail(string what) => Expect(false, what);

    /// <summary>Where every service's output stands now; <see cref="Quote"/> prints what they logged since.</summary>
    public static LogMark Mark(DemoEnvironment env) => new(env.Services.Where(s => s.Current is not null).Select(s => (s, s.Current!, s.Current!.LineCount)).ToList());

    /// <summary>Prints, in time order, the log lines the services wrote since <paramref name="mark"/> that mention one of <paramref name="keys"/>.</summary>
    public void Quote(DemoEnvironment env, LogMark mark, params string[] keys)
    {
        var lines = new List<(string Time, string Service, string Text)>();
        var seen = new HashSet<ChildProcess>();
        foreach (var (service, process, from) in mark.Positions)
        {
            seen.Add(process);
            Collect(service.Name, process, from);
        }

        foreach (var service in env.Services)
        {
            if (service.Current is { } process && seen.Add(process))
            {
                Collect(service.Name, process, 0); // started (again) after the mark
            }
        }

        _out.WriteLine("  What the services logged:");
        foreach (var (time, service, text) in lines.OrderBy(l => l.Time, StringComparer.Ordinal))
        {
            _out.WriteLine($"    {time} {service,-11} {text}");
        }

        void Collect(string name, ChildProcess process, int from)
        {
            foreach (var line in process.Lines(from))
            {
                if (!keys.Any(k => line.Contains(k, StringComparison.Ordinal)))
                {
                    continue;
                }

                var match = LogLine().Match(line);
                if (match.Success)
                {
                    var level = match.Groups["level"].Value;
                    var prefix = level is "warn" or "fail" or "crit" ? level.ToUpperInvariant() + " " : string.Empty;
                    lines.Add((match.Groups["time"].Value, name, prefix + Shorten(match.Groups["message"].Value)));
                }
            }
        }
    }

    public static string Money(decimal amount) => amount.ToString("#,##0.00", CultureInfo.InvariantCulture);

    // Keeps the narrative readable: XIDs are long (format id, gtrid, branch qualifier).
    private static string Shorten(string text) => text.Length > 180 ? text[..177] + "..." : text;

    [GeneratedRegex(@"^(?<time>\d\d:\d\d:\d\d\.\d{3}) (?<level>\w{4}): (?<category>[^\[]+)\[(?<id>\d+)\] (?<message>.*)$")]
    private static partial Regex LogLine();
}

/// <summary>How many lines each service process had written at one moment.</summary>
internal sealed record LogMark(IReadOnlyList<(ServiceEndpoint Service, ChildProcess Process, int Lines)> Positions);
