using TwoPC.Client;

namespace TwoPC.Coordinator.Server.Security;

/// <summary>How the transaction API authenticates its callers (<c>Coordinator:Authentication</c>).</summary>
internal sealed class ApiAuthenticationOptions
{
    /// <summary>
    /// <c>AllowAnonymous</c> (default false): callers without credentials are served, as before authentication existed.
    /// Allowed only while every address the server listens on is loopback; a warning is logged at start. Wrong credentials
    /// are refused all the same.
    /// </summary>
    public bool AllowAnonymous { get; set; }

    /// <summary><c>ParticipantClockSkew</c> (default 5 minutes): how old or early a participant's signed call may be.</summary>
    public TimeSpan ParticipantClockSkew { get; set; } = RequestSignature.DefaultClockSkew;

    /// <summary>Whether JWT bearer tokens are accepted (the standard <c>Authentication:Schemes:Bearer</c> section exists).</summary>
    public bool Bearer { get; set; }
}
