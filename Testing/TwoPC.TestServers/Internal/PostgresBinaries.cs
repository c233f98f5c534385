using System.Collections.Concurrent;
using System.Text;

namespace TwoPC.TestServers.Internal;

/// <summary>The PostgreSQL server programs a <see cref="PostgresServer"/> runs.</summary>
internal sealed record PostgresBinaries(string BinDirectory, string Version)
{
    public const string BinDirEnvironmentVariable = "TWOPC_PG_BINDIR";

    /// <summary>The Debian package that provides the server binaries (same as scripts/ensure-servers.sh).</summary>
    public static readonly IReadOnlyList<string> AptPackages = ["postgresql"];

    private static readonly string[] RequiredPrograms = ["initdb", "pg_ctl", "postgres"];
    private static readonly ConcurrentDictionary<string, Lazy<Task<PostgresBinaries>>> Cache = new(StringComparer.Ordinal);

    public string InitDb => Path.Combine(BinDirectory, "initdb");

    public string PgCtl => Path.Combine(BinDirectory, "pg_ctl");

    public string Postgres => Path.Combine(BinDirectory, "postgres");

    /// <summary>
    /// Finds the binaries (explicit directory, TWOPC_PG_BINDIR, pg_config --bindir,
    /// /usr/lib/postgresql/*/bin newest first, PATH), installing PostgreSQL with apt when none are
    /// found and <paramref name="allowInstall"/>. Cached per process.
    /// </summary>
    public static Task<PostgresBinaries> LocateOrInstallAsync(string? binDirectory, bool allowInstall, CancellationToken cancellationToken)
    {
        var explicitDirectory = binDirectory ?? NullIfEmpty(Environment.GetEnvironmentVariable(BinDirEnvironmentVariable));
        var source = binDirectory is not null ? "PostgresServerOptions.BinDirectory" : BinDirEnvironmentVariable;
        var key = (explicitDirectory ?? string.Empty) + "|" + allowInstall;
        var lazy = Cache.GetOrAdd(key, _ => new Lazy<Task<PostgresBinaries>>(() => explicitDirectory is not null
            ? FromExplicitDirectoryAsync(explicitDirectory, source)
            : LocateOrInstallCoreAsync(allowInstall)));
        var task = lazy.Value;
        // Do not cache failures: the next server tries again (e.g. after someone installed PostgreSQL).
        _ = task.ContinueWith(
            _ => Cache.TryRemove(new KeyValuePair<string, Lazy<Task<PostgresBinaries>>>(key, lazy)),
            CancellationToken.None,
            TaskContinuationOptions.NotOnRanToCompletion | TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
        return task.WaitAsync(cancellationToken);
    }

    private static async Task<PostgresBinaries> FromExplicitDirectoryAsync(string directory, string source)
    {
        var missing = Missing(directory);
        if (missing.Count > 0)
        {
            throw new TestServerException(
                $"{source} = '{directory}', but that directory lacks {string.Join(", ", missing)}. "
                + $"Point it at the PostgreSQL server's bin directory (e.g. /usr/lib/postgresql/15/bin), or unset it to let "
                + "TwoPC.TestServers find PostgreSQL or install it with apt.");
        }

        return await WithVersionAsync(directory).ConfigureAwait(false);
    }

    private static async Task<PostgresBinaries> LocateOrInstallCoreAsync(bool allowInstall)
    {
        var tried = new List<string>();
        var found = await FindAsync(tried).ConfigureAwait(false);
        if (found is not null)
        {
            return await WithVersionAsync(found).ConfigureAwait(false);
        }

        if (!allowInstall || AptInstaller.InstallForbidden)
        {
            throw new TestServerException(NotFoundMessage(tried, allowInstall
                ? $"Installing is disabled by {AptInstaller.NoInstallEnvironmentVariable}."
                : "Installing is disabled by PostgresServerOptions.AllowInstall = false."));
        }

        await AptInstaller.InstallAsync(
                "The PostgreSQL server",
                AptPackages,
                () => FindAsync([]).GetAwaiter().GetResult() is not null,
                CancellationToken.None)
            .ConfigureAwait(false);

        var retried = new List<string>();
        found = await FindAsync(retried).ConfigureAwait(false);
        return found is not null
            ? await WithVersionAsync(found).ConfigureAwait(false)
            : throw new TestServerException(NotFoundMessage(retried, $"apt-get install {string.Join(' ', AptPackages)} succeeded, but the binaries are still not found."));
    }

    private static string NotFoundMessage(List<string> tried, string reason)
    {
        var builder = new StringBuilder("PostgreSQL server binaries (initdb, pg_ctl, postgres) not found. ")
            .AppendLine(reason)
            .AppendLine("Looked in:");
        foreach (var place in tried)
        {
            builder.Append("  ").AppendLine(place);
        }

        return builder
            .Append($"Install them (scripts/ensure-servers.sh, or apt-get install -y {string.Join(' ', AptPackages)}) or set {BinDirEnvironmentVariable} to their directory.")
            .ToString();
    }

    private static async Task<string?> FindAsync(List<string> tried)
    {
        var pgConfig = Executables.Find("pg_config");
        if (pgConfig is not null)
        {
            var result = await ProcessRunner.RunAsync(pgConfig, ["--bindir"], TimeSpan.FromSeconds(15)).ConfigureAwait(false);
            var directory = result.Succeeded ? result.Output.Trim() : null;
            if (directory is not null && Missing(directory).Count == 0)
            {
                return directory;
            }

            tried.Add($"{pgConfig} --bindir → {(directory is null ? "failed" : directory + " (lacks " + string.Join(", ", Missing(directory)) + ")")}");
        }
        else
        {
            tried.Add("pg_config: not on PATH");
        }

        const string DebianRoot = "/usr/lib/postgresql";
        if (Directory.Exists(DebianRoot))
        {
            var versions = Directory.EnumerateDirectories(DebianRoot)
                .Select(path => (Path: Path.Combine(path, "bin"), Version: double.TryParse(Path.GetFileName(path), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var v) ? v : 0))
                .OrderByDescending(entry => entry.Version);
            var any = false;
            foreach (var (path, _) in versions)
            {
                any = true;
                if (Missing(path).Count == 0)
                {
                    return path;
                }

                tried.Add(path + " (lacks " + string.Join(", ", Missing(path)) + ")");
            }

            if (!any)
            {
                tried.Add(DebianRoot + "/*/bin (no versions installed)");
            }
        }
        else
        {
            tried.Add(DebianRoot + "/*/bin (does not exist)");
        }

        var onPath = Executables.Find("pg_ctl");
        if (onPath is not null && Missing(Path.GetDirectoryName(onPath)!).Count == 0)
        {
            return Path.GetDirectoryName(onPath);
        }

        tried.Add("pg_ctl on PATH and in /usr/local/bin, /usr/bin, ... → " + (onPath is null ? "not found (or a dangling link)" : onPath + " (but initdb or postgres is missing beside it)"));
        foreach (var path in new[] { "/usr/local/pgsql/bin", "/usr/pgsql/bin" })
        {
            if (Missing(path).Count == 0)
            {
                return path;
            }

            tried.Add(path);
        }

        return null;
    }

    private static List<string> Missing(string directory)
        => RequiredPrograms.Where(program => !Executables.IsExecutable(Path.Combine(directory, program))).ToList();

    private static async Task<PostgresBinaries> WithVersionAsync(string directory)
    {
        var result = await ProcessRunner.RunAsync(Path.Combine(directory, "postgres"), ["--version"], TimeSpan.FromSeconds(15)).ConfigureAwait(false);
        if (!result.Succeeded)
        {
            throw new TestServerException($"PostgreSQL found in {directory}, but 'postgres --version' fails:{Environment.NewLine}{result.Describe()}");
        }

        return new PostgresBinaries(directory, result.Output.Trim());
    }

    private static string? NullIfEmpty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value;
}
