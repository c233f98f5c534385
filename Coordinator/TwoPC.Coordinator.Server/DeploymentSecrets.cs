using TwoPC.Client;

namespace TwoPC.Coordinator.Server;

/// <summary>Start-up refusal of secrets copied from an example file (issue 12, item 6).</summary>
internal static class DeploymentSecrets
{
    /// <summary>Refuses an <c>Admin:ApiKey</c> that is a known placeholder (<c>change-me</c> and the like).</summary>
    /// <exception cref="InvalidOperationException">The key is a placeholder.</exception>
    public static void Check(IConfiguration configuration)
    {
        var admin = configuration["Admin:ApiKey"];
        if (!string.IsNullOrEmpty(admin) && !RequestSignature.IsUsableKey(admin, out var problem) && problem.Contains("placeholder", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"Admin:ApiKey is not usable: {problem}. (Leave it unset to disable the admin endpoints.)");
        }
    }
}
