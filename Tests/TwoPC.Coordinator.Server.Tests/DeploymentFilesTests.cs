using System.Text.RegularExpressions;

namespace TwoPC.Coordinator.Server.Tests;

/// <summary>
/// Issue 12, item 6: the container setup (docker-compose.yml, Dockerfile) read as files — there is no Docker engine
/// here — and the coordinator built with the compose file's own environment.
/// </summary>
public sealed partial class DeploymentFilesTests : IDisposable
{
    private readonly DirectoryInfo _log = Directory.CreateTempSubdirectory("twopc-deploy-");

    public void Dispose() => _log.Delete(recursive: true);

    [Fact]
    public void Item06_every_key_in_the_compose_file_is_a_required_variable_without_a_default()
    {
        var compose = File.ReadAllText(RepositoryFile("docker-compose.yml"));
        Assert.DoesNotContain("change-me", compose, StringComparison.OrdinalIgnoreCase);
        var keys = KeySetting().Matches(compose).ToList();
        Assert.True(keys.Count >= 5, $"expected the admin key and both participants' keys on both sides; found {keys.Count}");
        foreach (var key in keys)
        {
            var value = key.Groups["value"].Value.Trim();
            Assert.True(RequiredVariable().IsMatch(value), $"{key.Groups["name"].Value}: {value} is not a required ${{VAR:?message}} variable");
        }
    }

    [Fact]
    public void Item06_the_coordinator_refuses_to_start_with_the_compose_environment_when_a_key_is_a_placeholder()
    {
        foreach (var placeholder in new[] { "change-me", "change-me-too" })
        {
            var error = Assert.ThrowsAny<InvalidOperationException>(() => CoordinatorServer.BuildApp(CoordinatorArguments(_ => placeholder)));
            Assert.Contains("placeholder", error.Message, StringComparison.Ordinal);
        }

        // The same environment with real keys builds: the refusal above is the keys', nothing else's.
        var app = CoordinatorServer.BuildApp(CoordinatorArguments(_ => Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32))));
        Assert.NotNull(app);
    }

    [Fact]
    public void Item06_the_image_runs_as_a_non_root_user_that_owns_the_log_directory()
    {
        var lines = File.ReadAllLines(RepositoryFile("Dockerfile")).Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#')).ToList();
        var final = lines.FindLastIndex(l => l.StartsWith("FROM ", StringComparison.OrdinalIgnoreCase));
        var runtime = lines[final..];
        var user = runtime.LastOrDefault(l => l.StartsWith("USER ", StringComparison.OrdinalIgnoreCase));
        Assert.True(user is not null, "the runtime stage sets no USER: it runs as root");
        var name = user["USER ".Length..].Trim().Split(':')[0];
        Assert.DoesNotContain(name, new[] { "root", "0" });
        var entry = runtime.FindIndex(l => l.StartsWith("ENTRYPOINT", StringComparison.OrdinalIgnoreCase));
        Assert.True(runtime.IndexOf(user) < entry, "USER must come before the ENTRYPOINT");
        Assert.Contains(runtime, l => l.StartsWith("RUN ", StringComparison.Ordinal) && l.Contains("chown", StringComparison.Ordinal) && l.Contains("/var/lib/twopc", StringComparison.Ordinal));
    }

    // The coordinator service's environment from docker-compose.yml, as command-line settings; each required
    // ${VAR:?...} replaced by secret(VAR). The listening address and log directory are this test's.
    private string[] CoordinatorArguments(Func<string, string> secret)
    {
        var lines = File.ReadAllLines(RepositoryFile("docker-compose.yml"));
        var start = Array.FindIndex(lines, l => l == "  coordinator-1:");
        var environment = Array.FindIndex(lines, start, l => l.Trim().StartsWith("environment:", StringComparison.Ordinal));
        var arguments = new List<string> { "--Urls=http://127.0.0.1:0", "--Logging:LogLevel:Default=Warning" };
        for (var i = environment + 1; i < lines.Length && lines[i].StartsWith("      ", StringComparison.Ordinal); i++)
        {
            var line = lines[i].Trim();
            if (line.StartsWith('#'))
            {
                continue;
            }

            var colon = line.IndexOf(':', StringComparison.Ordinal);
            var name = line[..colon].Trim();
            var value = Regex.Replace(line[(colon + 1)..].Split(" #")[0].Trim().Trim('"'), @"^\$\{(?<var>[A-Z_]+):\?.*\}$", m => secret(m.Groups["var"].Value));
            if (name == "TwoPC__LogDirectory")
            {
                value = _log.FullName;
            }

            arguments.Add($"--{name.Replace("__", ":", StringComparison.Ordinal)}={value}");
        }

        return [.. arguments];
    }

    private static string RepositoryFile(string name)
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "TwoPC.sln")))
            {
                return Path.Combine(directory.FullName, name);
            }
        }

        throw new InvalidOperationException("The repository root (TwoPC.sln) was not found above " + AppContext.BaseDirectory);
    }

    [GeneratedRegex(@"^\s+(?<name>[A-Za-z_]*(Key|KEY|ApiKey))\s*:\s*(?<value>.*)$", RegexOptions.Multiline)]
    private static partial Regex KeySetting();

    [GeneratedRegex(@"^\$\{[A-Z_]+:\?[^}]+\}$")]
    private static partial Regex RequiredVariable();
}
