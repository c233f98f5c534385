using Microsoft.AspNetCore.Authentication;
using TwoPC.Client;

namespace TwoPC.Coordinator.Server.Security;

/// <summary>Options of the participant signature scheme (<c>Coordinator:Authentication</c>).</summary>
internal sealed class ParticipantSignatureOptions : AuthenticationSchemeOptions
{
    /// <summary>How far a signed timestamp may be from this server's clock (<c>ParticipantClockSkew</c>, default 5 minutes).</summary>
    public TimeSpan ClockSkew { get; set; } = RequestSignature.DefaultClockSkew;

    /// <summary>The largest body a signed request may have: the participant's calls are small (64 KiB).</summary>
    public int MaxBodyBytes { get; set; } = 64 * 1024;
}
