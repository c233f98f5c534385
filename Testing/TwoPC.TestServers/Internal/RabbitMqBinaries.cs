using System.Collections.Concurrent;
using System.Text;
using System.Text.RegularExpressions;

namespace TwoPC.TestServers.Internal;

/// <summary>The RabbitMQ scripts a <see cref="RabbitMqServer"/> runs, and the Erlang runtime they need.</summary>
internal sealed partial record RabbitMqBinaries(string SbinDirectory, string? PackageVersion)
{
    public const string SbinDirEnvironmentVariable = "TWOPC_RABBITMQ_SBINDIR";

    /// <summary>The Debian package (same as scripts/ensure-servers.sh --rabbitmq); Erlang comes with it.</summary>
    public static readonly IReadOnlyList<string> AptPackages = ["rabbitmq-server"];

    /// <summary>Debian/Ubuntu: the real scripts. /usr/sbin/rabbitmq-* are wrappers that su to the rabbitmq account, cd to /var/lib/rabbitmq and, for the server, redirect its output into /var/log/rabbitmq.</summary>
    private const string DebianScriptsDirectory = "/usr/lib/rabbitmq/bin";

    private static readonly string[] RequiredScripts = ["rabbitmq-server", "rabbitmqctl"];
    private static readonly ConcurrentDictionary<string, Lazy<Task<RabbitMqBinaries>>> Cache = new(StringComparer.Ordinal);

    public string Server => Path.Combine(SbinDirectory, "rabbitmq-server");

    public string Ctl => Path.Combine(SbinDirectory, "rabbitmqctl");

    /// <summary>Finds the scripts (explicit directory, TWOPC_RABBITMQ_SBINDIR, /usr/lib/rabbitmq/bin, PATH), installing rabbitmq-server with apt when missing and allowed. Cached per process.</summary>
    public static Task<RabbitMqBinaries> LocateOrInstallAsync(string? sbinDirectory, bool allowInstall, CancellationToken cancellationToken)
    {
        var explicitDirectory = sbinDirectory ?? NullIfEmpty(Environment.GetEnvironmentVariable(SbinDirEnvironmentVariable));
        var source = sbinDirectory is not null ? "RabbitMqServerOptions.SbinDirectory" : SbinDirEnvironmentVariable;
        var key = (explicitDirectory ?? string.Empty) + "|" + allowInstall;
        var lazy = Cache.GetOrAdd(key, _ => new Lazy<Task<RabbitMqBinaries>>(() => explicitDirectory is not null
            ? Task.FromResult(FromExplicitDirectory(explicitDirectory, source))
            : LocateOrInstallCoreAsync(allowInstall)));
        var task = lazy.Value;
        // Do not cache failures: the next server tries again (e.g. after someone installed RabbitMQ).
        _ = task.ContinueWith(
            _ => Cache.TryRemove(new KeyValuePair<string, Lazy<Task<RabbitMqBinaries>>>(key, lazy)),
            CancellationToken.None,
            TaskContinuationOptions.NotOnRanToCompletion | TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
        return task.WaitAsync(cancellationToken);
    }

    private static RabbitMqBinaries FromExplicitDirectory(string directory, string source)
    {
        var missing = Missing(directory);
        if (missing.Count > 0)
        {
            throw new TestServerException(
                $"{source} = '{directory}', but that directory lacks {string.Join(", ", missing)}. "
                + $"Point it at the directory of the real RabbitMQ scripts (e.g. {DebianScriptsDirectory}), or unset it to let "
                + "TwoPC.TestServers find RabbitMQ or install it with apt.");
        }

        return Create(directory);
    }

    private static async Task<RabbitMqBinaries> LocateOrInstallCoreAsync(bool allowInstall)
    {
        var tried = new List<string>();
        var found = Find(tried);
        if (found is not null)
        {
            return Create(found);
        }

        if (!allowInstall || AptInstaller.InstallForbidden)
        {
            throw new TestServerException(NotFoundMessage(tried, allowInstall
                ? $"Installing is disabled by {AptInstaller.NoInstallEnvironmentVariable}."
                : "Installing is disabled by RabbitMqServerOptions.AllowInstall = false."));
        }

        await AptInstaller.InstallAsync("The RabbitMQ server", AptPackages, () => Find([]) is not null, CancellationToken.None).ConfigureAwait(false);

        var retried = new List<string>();
        found = Find(retried);
        return found is not null
            ? Create(found)
            : throw new TestServerException(NotFoundMessage(retried, $"apt-get install {string.Join(' ', AptPackages)} succeeded, but the scripts are still not found."));
    }

    private static string NotFoundMessage(List<string> tried, string reason)
    {
        var builder = new StringBuilder("RabbitMQ (rabbitmq-server, rabbitmqctl and Erlang's erl) not found. ")
            .AppendLine(reason)
            .AppendLine("Looked in:");
        foreach (var place in tried)
        {
            builder.Append("  ").AppendLine(place);
        }

        return builder
            .Append($"Install it (scripts/ensure-servers.sh --rabbitmq, or apt-get install -y {string.Join(' ', AptPackages)}) or set {SbinDirEnvironmentVariable} to the directory of its scripts.")
            .ToString();
    }

    private static string? Find(List<string> tried)
    {
        if (Executables.Find("erl") is null)
        {
            tried.Add("erl (the Erlang runtime): not on PATH nor in /usr/bin, /usr/local/bin, ...");
            return null;
        }

        if (Missing(DebianScriptsDirectory).Count == 0)
        {
            return DebianScriptsDirectory;
        }

        tried.Add(DebianScriptsDirectory + (Directory.Exists(DebianScriptsDirectory) ? " (lacks " + string.Join(", ", Missing(DebianScriptsDirectory)) + ")" : " (does not exist)"));

        var onPath = Executables.Find("rabbitmq-server");
        if (onPath is null)
        {
            tried.Add("rabbitmq-server on PATH and in /usr/sbin, /usr/local/sbin, ...: not found");
            return null;
        }

        var real = RealPath(onPath);
        if (Path.GetFileName(real) == "rabbitmq-script-wrapper")
        {
            // A Debian-style wrapper outside /usr/lib/rabbitmq: it runs the real scripts from its own directory.
            tried.Add($"{onPath} → {real} (a wrapper that switches to the rabbitmq account; its directory lacks the real scripts)");
            return Missing(Path.GetDirectoryName(real)!).Count == 0 ? Path.GetDirectoryName(real) : null;
        }

        var directory = Path.GetDirectoryName(onPath)!;
        if (Missing(directory).Count == 0)
        {
            return directory;
        }

        tried.Add($"{directory} (has rabbitmq-server but lacks {string.Join(", ", Missing(directory))})");
        return null;
    }

    private static List<string> Missing(string directory)
        => RequiredScripts.Where(script => !Executables.IsExecutable(Path.Combine(directory, script))).ToList();

    /// <summary>The version from the real script's location (…/rabbitmq_server-3.10.8/sbin/rabbitmq-server), if it shows one.</summary>
    private static RabbitMqBinaries Create(string directory)
    {
        var match = VersionInPath().Match(RealPath(Path.Combine(directory, "rabbitmq-server")));
        return new RabbitMqBinaries(directory, match.Success ? match.Groups[1].Value : null);
    }

    private static string RealPath(string path)
    {
        try
        {
            var target = File.ResolveLinkTarget(path, returnFinalTarget: true);
            return target?.FullName ?? Path.GetFullPath(path);
        }
        catch (IOException)
        {
            return path;
        }
    }

    [GeneratedRegex(@"rabbitmq_server-([0-9][0-9A-Za-z.+~-]*)[/\\]")]
    private static partial Regex VersionInPath();

    private static string? NullIfEmpty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value;
}
