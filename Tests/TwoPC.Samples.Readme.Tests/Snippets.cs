using System.Text;
using System.Text.RegularExpressions;

namespace TwoPC.Samples.Readme.Tests;

/// <summary>
/// The READMEs' ```csharp blocks and the compiled regions they must equal. A block is preceded by a marker line
/// <c>&lt;!-- snippet: File.cs#region --&gt;</c>; the region is the text between <c>#region region</c> and the next
/// <c>#endregion</c> in <c>File.cs</c> (under one of <see cref="SnippetDirectories"/>), dedented.
/// </summary>
internal static partial class Snippets
{
    /// <summary>Where regions live, relative to the repository root.</summary>
    public static readonly string[] SnippetDirectories = ["Samples/TwoPC.Samples.Readme", "Tests/TwoPC.Samples.Readme.Tests"];

    /// <summary>The environment variable that makes the test rewrite the README blocks from the regions.</summary>
    public const string UpdateVariable = "TWOPC_UPDATE_SNIPPETS";

    public static string RepositoryRoot { get; } = FindRoot();

    /// <summary>
    /// README.md, docs/*.md, and the READMEs of Coordinator/, Participants/, Testing/ and Samples/ and of every project
    /// under them (the package READMEs), relative to the root.
    /// </summary>
    public static IReadOnlyList<string> ReadmeFiles()
    {
        var files = new List<string> { Path.Combine(RepositoryRoot, "README.md") };
        var docs = Path.Combine(RepositoryRoot, "docs");
        if (Directory.Exists(docs))
        {
            files.AddRange(Directory.GetFiles(docs, "*.md"));
        }

        foreach (var group in new[] { "Coordinator", "Participants", "Testing", "Samples" })
        {
            var root = Path.Combine(RepositoryRoot, group);
            files.Add(Path.Combine(root, "README.md"));
            files.AddRange(Directory.GetDirectories(root).Select(d => Path.Combine(d, "README.md")));
        }

        return files.Where(File.Exists)
            .Select(f => Path.GetRelativePath(RepositoryRoot, f).Replace('\\', '/'))
            .Distinct(StringComparer.Ordinal)
            .Order(StringComparer.Ordinal)
            .ToArray();
    }

    /// <summary>Every region of the snippet directories, keyed <c>File.cs#name</c>.</summary>
    public static IReadOnlyDictionary<string, string> LoadRegions()
    {
        var regions = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var directory in SnippetDirectories)
        {
            foreach (var file in Directory.GetFiles(Path.Combine(RepositoryRoot, directory), "*.cs").Order(StringComparer.Ordinal))
            {
                foreach (var (name, text) in ParseRegions(File.ReadAllText(file)))
                {
                    var key = Path.GetFileName(file) + "#" + name;
                    if (!regions.TryAdd(key, text))
                    {
                        throw new InvalidOperationException($"Two regions are named {key}: region names must be unique per file name.");
                    }
                }
            }
        }

        return regions;
    }

    /// <summary>The regions of one C# file: (name, dedented text).</summary>
    public static IEnumerable<(string Name, string Text)> ParseRegions(string source)
    {
        var lines = SplitLines(source);
        for (var i = 0; i < lines.Length; i++)
        {
            var start = lines[i].Trim();
            if (!start.StartsWith("#region ", StringComparison.Ordinal))
            {
                continue;
            }

            var name = start["#region ".Length..].Trim();
            var end = Array.FindIndex(lines, i + 1, l => l.Trim().StartsWith("#endregion", StringComparison.Ordinal));
            if (end < 0)
            {
                throw new InvalidOperationException($"#region {name} has no #endregion.");
            }

            yield return (name, Dedent(lines[(i + 1)..end]));
            i = end;
        }
    }

    /// <summary>Removes the indentation common to every non-blank line; blank lines become empty.</summary>
    public static string Dedent(IReadOnlyList<string> lines)
    {
        var indent = lines.Where(l => l.Trim().Length > 0).Select(l => l.Length - l.TrimStart().Length).DefaultIfEmpty(0).Min();
        return string.Join("\n", lines.Select(l => l.Trim().Length == 0 ? string.Empty : l[indent..].TrimEnd()));
    }

    /// <summary>
    /// Checks one README's csharp blocks against the regions. Returns the problems and the README text with every
    /// block that has a known marker rewritten from its region (what <see cref="UpdateVariable"/> writes).
    /// </summary>
    public static (IReadOnlyList<Problem> Problems, string Updated) Check(string readmeName, string readme, IReadOnlyDictionary<string, string> regions)
    {
        var lines = SplitLines(readme);
        var problems = new List<Problem>();
        var output = new List<string>();
        for (var i = 0; i < lines.Length; i++)
        {
            output.Add(lines[i]);
            if (lines[i].Trim() != "```csharp")
            {
                continue;
            }

            var end = Array.FindIndex(lines, i + 1, l => l.Trim() == "```");
            if (end < 0)
            {
                problems.Add(new Problem(ProblemKind.Unclosed, $"{readmeName}:{i + 1}: the ```csharp block is never closed."));
                break;
            }

            var block = string.Join("\n", lines[(i + 1)..end]);
            var marker = i > 0 ? MarkerPattern().Match(lines[i - 1]) : Match.Empty;
            if (!marker.Success)
            {
                problems.Add(new Problem(ProblemKind.NoMarker, $"{readmeName}:{i + 1}: this ```csharp block has no `<!-- snippet: File.cs#region -->` line right above it. Put its code in a #region of {SnippetDirectories[0]} and add the marker."));
            }
            else if (!regions.TryGetValue(marker.Groups[1].Value, out var region))
            {
                problems.Add(new Problem(ProblemKind.UnknownSnippet, $"{readmeName}:{i}: the marker names {marker.Groups[1].Value}, but no such region exists under {string.Join(" or ", SnippetDirectories)}."));
            }
            else
            {
                if (region != block)
                {
                    problems.Add(new Problem(ProblemKind.Differs, $"{readmeName}:{i + 1}: the block differs from {marker.Groups[1].Value}.\n{Diff(block, region)}\nExpected block (the region):\n{region}"));
                }

                output.AddRange(SplitLines(region));
                i = end - 1;
                continue;
            }

            output.AddRange(lines[(i + 1)..end]);
            i = end - 1;
        }

        var updated = string.Join("\n", output);
        return (problems, updated);
    }

    /// <summary>The first differing line, and the line counts.</summary>
    public static string Diff(string actual, string expected)
    {
        var a = SplitLines(actual);
        var e = SplitLines(expected);
        for (var i = 0; i < Math.Max(a.Length, e.Length); i++)
        {
            var left = i < a.Length ? a[i] : "(end of block)";
            var right = i < e.Length ? e[i] : "(end of region)";
            if (left != right)
            {
                return new StringBuilder()
                    .Append("first difference at line ").Append(i + 1).Append(" of the block (").Append(a.Length).Append(" lines; the region has ").Append(e.Length).Append("):\n")
                    .Append("  README: ").Append(left).Append('\n')
                    .Append("  region: ").Append(right)
                    .ToString();
            }
        }

        return "(no difference)";
    }

    private static string[] SplitLines(string text) => text.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n');

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "TwoPC.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("TwoPC.sln not found above " + AppContext.BaseDirectory);
    }

    [GeneratedRegex(@"^\s*<!--\s*snippet:\s*(\S+)\s*-->\s*$")]
    private static partial Regex MarkerPattern();

    public enum ProblemKind
    {
        NoMarker,
        UnknownSnippet,
        Differs,
        Unclosed,
    }

    public sealed record Problem(ProblemKind Kind, string Message);
}
