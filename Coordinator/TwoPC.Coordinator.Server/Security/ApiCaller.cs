using System.Security.Claims;

namespace TwoPC.Coordinator.Server.Security;

/// <summary>
/// The caller of the transaction API, read only from the identity this server's own authentication added (never from
/// claims a bearer token carries: a token saying <c>role: participant</c> makes nobody a participant).
/// </summary>
/// <param name="Kind">What the caller may do.</param>
/// <param name="Name">The client's, participant's or token subject's name; null when anonymous.</param>
/// <param name="Owner">Whose transactions it may decide: <c>apikey:{name}</c>, <c>bearer:{sub}</c>; null when anonymous.</param>
internal sealed record ApiCaller(CallerKind Kind, string? Name, string? Owner)
{
    /// <summary>The authentication type of the identity this server adds; only its claims are read.</summary>
    public const string AuthenticationType = "TwoPC";

    private const string KindClaim = "twopc:caller";
    private const string OwnerClaim = "twopc:owner";

    public static readonly ApiCaller Anonymous = new(CallerKind.Anonymous, null, null);

    /// <summary>The caller <paramref name="user"/> was authenticated as; <see cref="Anonymous"/> without this server's identity.</summary>
    public static ApiCaller From(ClaimsPrincipal user)
    {
        ArgumentNullException.ThrowIfNull(user);
        var identity = user.Identities.FirstOrDefault(i => i.IsAuthenticated && string.Equals(i.AuthenticationType, AuthenticationType, StringComparison.Ordinal));
        if (identity is null || !Enum.TryParse<CallerKind>(identity.FindFirst(KindClaim)?.Value, out var kind))
        {
            return Anonymous;
        }

        return new ApiCaller(kind, identity.Name, identity.FindFirst(OwnerClaim)?.Value);
    }

    /// <summary>The identity that makes a principal this caller.</summary>
    public static ClaimsIdentity Identity(CallerKind kind, string name, string? owner)
    {
        var claims = new List<Claim> { new(ClaimTypes.Name, name), new(KindClaim, kind.ToString()) };
        if (owner is not null)
        {
            claims.Add(new Claim(OwnerClaim, owner));
        }

        return new ClaimsIdentity(claims, AuthenticationType);
    }

    /// <summary>What error messages and logs call this caller.</summary>
    public override string ToString() => Kind switch
    {
        CallerKind.Anonymous => "an anonymous caller",
        CallerKind.Client => $"client {Name}",
        CallerKind.Participant => $"participant {Name}",
        _ => "the admin key",
    };
}
