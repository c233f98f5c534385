namespace TwoPC.Samples.Readme.Tests;

/// <summary>
/// Every ```csharp block of README.md and of the package READMEs is the text of a region that compiles in
/// Samples/TwoPC.Samples.Readme (or in this project). To change a block, change its region and run
/// <c>TWOPC_UPDATE_SNIPPETS=1 dotnet test Tests/TwoPC.Samples.Readme.Tests -c Release --filter ReadmeSnippetTests</c>.
/// </summary>
public sealed class ReadmeSnippetTests
{
    [Fact]
    public void Every_csharp_block_in_the_readmes_has_a_marker_and_equals_its_region()
    {
        var update = Environment.GetEnvironmentVariable(Snippets.UpdateVariable) == "1";
        var regions = Snippets.LoadRegions();
        var problems = new List<string>();
        var blocks = 0;
        foreach (var readme in Snippets.ReadmeFiles())
        {
            var path = Path.Combine(Snippets.RepositoryRoot, readme);
            var text = File.ReadAllText(path);
            blocks += text.Split('\n').Count(l => l.Trim() == "```csharp");
            var (found, updated) = Snippets.Check(readme, text, regions);
            if (update && updated != text)
            {
                File.WriteAllText(path, updated);
            }

            problems.AddRange(found.Where(p => !update || p.Kind != Snippets.ProblemKind.Differs).Select(p => p.Message));
        }

        Assert.True(blocks >= 10, $"only {blocks} csharp blocks found: are the READMEs where {nameof(Snippets.ReadmeFiles)} looks?");
        Assert.True(
            problems.Count == 0,
            string.Join("\n\n", problems) +
            $"\n\nTo rewrite the README blocks from their regions: {Snippets.UpdateVariable}=1 dotnet test Tests/TwoPC.Samples.Readme.Tests -c Release --filter ReadmeSnippetTests");
    }

    [Fact]
    public void Every_region_is_shown_in_a_readme()
    {
        var used = Snippets.ReadmeFiles()
            .SelectMany(r => File.ReadAllLines(Path.Combine(Snippets.RepositoryRoot, r)))
            .Select(l => l.Trim())
            .Where(l => l.StartsWith("<!-- snippet:", StringComparison.Ordinal))
            .Select(l => l["<!-- snippet:".Length..^"-->".Length].Trim())
            .ToHashSet(StringComparer.Ordinal);

        var unused = Snippets.LoadRegions().Keys.Where(k => !used.Contains(k)).ToArray();
        Assert.True(unused.Length == 0, "regions no README shows (remove them, or add the block): " + string.Join(", ", unused));
    }

    [Fact]
    public void A_changed_block_a_block_without_marker_and_an_unknown_snippet_are_each_reported_and_update_fixes_the_change()
    {
        var regions = new Dictionary<string, string>
        {
            ["A.cs#one"] = "var x = 1;\nConsole.WriteLine(x);",
        };
        var readme = string.Join("\n",
            "# Title",
            "<!-- snippet: A.cs#one -->",
            "```csharp",
            "var x = 2;",
            "Console.WriteLine(x);",
            "```",
            "",
            "```csharp",
            "var y = 3;",
            "```",
            "<!-- snippet: A.cs#missing -->",
            "```csharp",
            "var z = 4;",
            "```",
            "");

        var (problems, updated) = Snippets.Check("TEST.md", readme, regions);

        Assert.Equal([Snippets.ProblemKind.Differs, Snippets.ProblemKind.NoMarker, Snippets.ProblemKind.UnknownSnippet], problems.Select(p => p.Kind));
        Assert.Contains("README: var x = 2;", problems[0].Message, StringComparison.Ordinal);
        Assert.Contains("region: var x = 1;", problems[0].Message, StringComparison.Ordinal);
        Assert.Equal(readme.Replace("var x = 2;", "var x = 1;", StringComparison.Ordinal), updated);
        Assert.Equal([Snippets.ProblemKind.NoMarker, Snippets.ProblemKind.UnknownSnippet], Snippets.Check("TEST.md", updated, regions).Problems.Select(p => p.Kind));
    }

    [Fact]
    public void Regions_are_dedented_and_keep_inner_blank_lines()
    {
        var source = "class C\n{\n    void M()\n    {\n        #region r\n        if (true)\n        {\n\n            Go();\n        }\n        #endregion\n    }\n}\n";

        var (name, text) = Assert.Single(Snippets.ParseRegions(source));

        Assert.Equal("r", name);
        Assert.Equal("if (true)\n{\n\n    Go();\n}", text);
    }
}
