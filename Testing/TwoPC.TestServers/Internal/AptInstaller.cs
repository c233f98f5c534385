using System.Text;

namespace TwoPC.TestServers.Internal;

/// <summary>
/// Installs Debian/Ubuntu packages non-interactively, serialized machine-wide (see
/// <see cref="MachineLock"/>) so parallel test processes and scripts/ensure-servers.sh never run
/// apt at the same time. Mirrors the apt commands of scripts/ensure-servers.sh.
/// </summary>
internal static class AptInstaller
{
    /// <summary>Set to 1/true to forbid installing anything (then a missing server is an error).</summary>
    public const string NoInstallEnvironmentVariable = "TWOPC_TEST_SERVERS_NO_INSTALL";

    /// <summary>The lock name shared with scripts/ensure-servers.sh (/var/lock/twopc-test-servers-apt.lock).</summary>
    public const string LockName = "twopc-test-servers-apt";

    private const string PolicyRcD = "/usr/sbin/policy-rc.d";

    private static readonly TimeSpan LockTimeout = TimeSpan.FromMinutes(20);
    private static readonly TimeSpan UpdateTimeout = TimeSpan.FromMinutes(5);
    private static readonly TimeSpan InstallTimeout = TimeSpan.FromMinutes(15);

    public static bool InstallForbidden
    {
        get
        {
            var value = Environment.GetEnvironmentVariable(NoInstallEnvironmentVariable);
            return value is not null && (value == "1" || value.Equals("true", StringComparison.OrdinalIgnoreCase));
        }
    }

    /// <summary>
    /// Installs <paramref name="packages"/> unless <paramref name="isInstalled"/> turns true while
    /// waiting for the lock (another process installed them). Package services are not started.
    /// </summary>
    public static async Task InstallAsync(string what, IReadOnlyList<string> packages, Func<bool> isInstalled, CancellationToken cancellationToken)
    {
        var packageList = string.Join(' ', packages);
        var manual = $"Install it yourself (e.g. run scripts/ensure-servers.sh as root, or apt-get install -y {packageList}).";
        var aptGet = Executables.Find("apt-get")
            ?? throw new TestServerException($"{what} is not installed and this is not an apt-based machine (no apt-get). {manual}");

        string fileName;
        List<string> prefix;
        if (Environment.IsPrivilegedProcess)
        {
            fileName = "env";
            prefix = [];
        }
        else
        {
            var sudo = Executables.Find("sudo");
            var canSudo = sudo is not null
                && (await ProcessRunner.RunAsync(sudo, ["-n", "true"], TimeSpan.FromSeconds(15), cancellationToken: cancellationToken).ConfigureAwait(false)).Succeeded;
            if (!canSudo)
            {
                throw new TestServerException($"{what} is not installed, and installing it needs root: this process is not root and has no password-less sudo. {manual}");
            }

            fileName = sudo!;
            prefix = ["-n", "env"];
        }

        List<string> Command(params string[] aptArguments) =>
        [
            .. prefix,
            "DEBIAN_FRONTEND=noninteractive",
            "NEEDRESTART_MODE=a",
            "APT_LISTCHANGES_FRONTEND=none",
            aptGet,
            "-q",
            "-o", "DPkg::Lock::Timeout=600",
            "-o", "Dpkg::Options::=--force-confdef",
            "-o", "Dpkg::Options::=--force-confold",
            .. aptArguments,
        ];

        using var machineLock = await MachineLock.AcquireAsync(LockName, LockTimeout, cancellationToken).ConfigureAwait(false);
        if (isInstalled())
        {
            return;
        }

        var createdPolicy = BlockServiceStarts();
        try
        {
            var update = await ProcessRunner.RunAsync(fileName, Command("update"), UpdateTimeout, cancellationToken: cancellationToken).ConfigureAwait(false);
            var install = await ProcessRunner.RunAsync(fileName, Command(["install", "-y", "--no-install-recommends", .. packages]), InstallTimeout, cancellationToken: cancellationToken)
                .ConfigureAwait(false);
            if (!install.Succeeded || !isInstalled())
            {
                var message = new StringBuilder()
                    .Append(what)
                    .Append(install.Succeeded
                        ? " is not installed, and after apt-get install succeeded it is still not found. "
                        : " is not installed and installing it with apt failed. ")
                    .AppendLine(manual)
                    .AppendLine("apt-get update:").Append(update.Describe(15))
                    .AppendLine("apt-get install:").Append(install.Describe());
                throw new TestServerException(message.ToString());
            }
        }
        finally
        {
            if (createdPolicy)
            {
                TryDelete(PolicyRcD);
            }
        }
    }

    /// <summary>
    /// While installing, a policy-rc.d that exits 101 stops the packages from starting their
    /// services (Debian's postgresql cluster on 5432, rabbitmq-server): tests start private servers.
    /// </summary>
    private static bool BlockServiceStarts()
    {
        if (!Environment.IsPrivilegedProcess || OperatingSystem.IsWindows() || File.Exists(PolicyRcD) || !Directory.Exists("/usr/sbin"))
        {
            return false;
        }

        try
        {
            File.WriteAllText(PolicyRcD, "#!/bin/sh\n# Temporary, from TwoPC.TestServers: do not start services while installing.\nexit 101\n");
            File.SetUnixFileMode(PolicyRcD, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
            return true;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }
    }
}
