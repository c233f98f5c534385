using System.Globalization;

namespace TwoPC.TestServers.Internal;

/// <summary>
/// The account a server runs as. Servers such as PostgreSQL refuse to run as root, so when the test
/// process is root every server command runs through <c>runuser -u USER --</c> (or <c>su</c> when
/// runuser is missing) and the server's private directory is given to that user. Otherwise the
/// server runs as the current user.
/// </summary>
internal sealed class ServerUser
{
    /// <summary>Overrides the account used when running as root (default: the server's own account, e.g. postgres).</summary>
    public const string UserEnvironmentVariable = "TWOPC_TEST_SERVER_USER";

    private readonly string? _switchTool;

    private ServerUser(string? userName, string? switchTool)
    {
        UserName = userName;
        _switchTool = switchTool;
    }

    /// <summary>The account to switch to, or null to run as the current user.</summary>
    public string? UserName { get; }

    public string Description => UserName is null
        ? $"the current user ({Environment.UserName})"
        : $"user '{UserName}' (via {Path.GetFileName(_switchTool)}, because this process is root)";

    public static async Task<ServerUser> ResolveAsync(string defaultUser, CancellationToken cancellationToken)
    {
        if (OperatingSystem.IsWindows() || !Environment.IsPrivilegedProcess)
        {
            return new ServerUser(null, null);
        }

        var user = Environment.GetEnvironmentVariable(UserEnvironmentVariable);
        if (string.IsNullOrWhiteSpace(user))
        {
            user = defaultUser;
        }

        var id = await ProcessRunner.RunAsync("id", ["-u", user], TimeSpan.FromSeconds(10), cancellationToken: cancellationToken)
            .ConfigureAwait(false);
        if (!id.Succeeded)
        {
            throw new TestServerException(
                $"This process runs as root and the server must not, but the account '{user}' to run it as does not exist. "
                + $"Installing the server package creates it; or set {UserEnvironmentVariable} to an existing unprivileged account."
                + Environment.NewLine + id.Describe());
        }

        if (id.Output.Trim() == "0")
        {
            throw new TestServerException($"The account '{user}' chosen to run the server is root ({UserEnvironmentVariable}); pick an unprivileged account.");
        }

        var tool = Executables.Find("runuser") ?? Executables.Find("su")
            ?? throw new TestServerException("This process runs as root, and neither runuser nor su was found to run the server as another user.");
        return new ServerUser(user, tool);
    }

    /// <summary>Runs <paramref name="fileName"/> as this account.</summary>
    public Task<ProcessResult> RunAsync(
        string fileName,
        IReadOnlyList<string> arguments,
        TimeSpan timeout,
        string? workingDirectory = null,
        CancellationToken cancellationToken = default)
    {
        var (file, args) = Wrap(fileName, arguments);
        return ProcessRunner.RunAsync(file, args, timeout, workingDirectory, cancellationToken: cancellationToken);
    }

    /// <summary>Synchronous variant for process-exit handlers.</summary>
    public ProcessResult Run(string fileName, IReadOnlyList<string> arguments, TimeSpan timeout, string? workingDirectory = null)
    {
        var (file, args) = Wrap(fileName, arguments);
        return ProcessRunner.Run(file, args, timeout, workingDirectory);
    }

    /// <summary>Gives <paramref name="directory"/> (recursively) to this account.</summary>
    public async Task GiveOwnershipAsync(string directory, CancellationToken cancellationToken)
    {
        if (UserName is null)
        {
            return;
        }

        var result = await ProcessRunner.RunAsync("chown", ["-R", UserName + ":", directory], TimeSpan.FromSeconds(30), cancellationToken: cancellationToken)
            .ConfigureAwait(false);
        if (!result.Succeeded)
        {
            throw new TestServerException(string.Create(CultureInfo.InvariantCulture, $"Could not give {directory} to user '{UserName}'.{Environment.NewLine}{result.Describe()}"));
        }

        // The account must be able to reach the directory: every parent needs search permission for it.
        var probe = await RunAsync("test", ["-w", directory], TimeSpan.FromSeconds(10), cancellationToken: cancellationToken).ConfigureAwait(false);
        if (!probe.Succeeded)
        {
            throw new TestServerException(
                $"User '{UserName}' cannot write to {directory} (a parent directory is probably not searchable by it, e.g. under /root). "
                + "Choose a base directory under /tmp or another world-searchable place.");
        }
    }

    private (string FileName, IReadOnlyList<string> Arguments) Wrap(string fileName, IReadOnlyList<string> arguments)
    {
        if (UserName is null)
        {
            return (fileName, arguments);
        }

        if (Path.GetFileName(_switchTool) == "runuser")
        {
            return (_switchTool!, ["-u", UserName, "--", fileName, .. arguments]);
        }

        // su USER -s /bin/sh -c 'exec "$0" "$@"' FILE ARGS... : no quoting of the arguments needed.
        return (_switchTool!, ["-s", "/bin/sh", "-c", "exec \"$0\" \"$@\"", UserName, fileName, .. arguments]);
    }
}
