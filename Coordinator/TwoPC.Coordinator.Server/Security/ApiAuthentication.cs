using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.Authorization;
using Microsoft.Extensions.DependencyInjection.Extensions;
using TwoPC.Client;

namespace TwoPC.Coordinator.Server.Security;

/// <summary>
/// Authentication and authorization of the transaction API, with ASP.NET Core's own: the schemes <c>ApiKey</c> (clients'
/// keys, <c>Coordinator:Clients:{name}:ApiKey</c>, and the admin key in <c>X-Api-Key</c>), <c>TwoPC-Participant</c>
/// (requests signed with a configured participant's key) and — when the standard <c>Authentication:Schemes:Bearer</c>
/// section exists — JWT bearer tokens; a policy scheme picks one from the request's headers. The endpoints require
/// <see cref="CallerPolicy"/>; <see cref="TransactionAccess"/> says what each caller may do.
/// </summary>
public static class ApiAuthentication
{
    /// <summary>The policy scheme that forwards to the scheme the request's headers name.</summary>
    public const string PolicyScheme = "TwoPC";

    /// <summary>Clients' API keys (<c>Authorization: ApiKey {key}</c>) and the admin key (<c>X-Api-Key</c>).</summary>
    public const string ApiKeyScheme = "ApiKey";

    /// <summary>Requests signed with a configured participant's key.</summary>
    public const string ParticipantScheme = "TwoPC-Participant";

    /// <summary>The authorization policy of the transaction API's endpoints.</summary>
    public const string CallerPolicy = "TwoPC.Caller";

    /// <summary>
    /// Adds the schemes, the policy and the start-up checks. Reads and checks the keys now: a client key that is empty,
    /// short or a placeholder fails here, with a message naming it.
    /// </summary>
    /// <param name="services">The server's services.</param>
    /// <param name="configuration">The root configuration.</param>
    /// <exception cref="InvalidOperationException">A key or participant is misconfigured.</exception>
    public static IServiceCollection AddTwoPCAuthentication(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var section = configuration.GetSection("Coordinator:Authentication");
        var options = new ApiAuthenticationOptions
        {
            AllowAnonymous = section.GetValue("AllowAnonymous", false),
            ParticipantClockSkew = section.GetValue("ParticipantClockSkew", RequestSignature.DefaultClockSkew),
            Bearer = configuration.GetSection("Authentication:Schemes:" + JwtBearerDefaults.AuthenticationScheme).Exists(),
        };
        if (options.ParticipantClockSkew <= TimeSpan.Zero || options.ParticipantClockSkew > TimeSpan.FromHours(1))
        {
            throw new InvalidOperationException("Coordinator:Authentication:ParticipantClockSkew must be positive and at most 1 hour.");
        }

        services.AddSingleton(options);
        services.AddSingleton(ApiClients.FromConfiguration(configuration));
        services.TryAddSingleton(ParticipantDirectory.FromConfiguration(configuration.GetSection("Coordinator")));
        services.AddHostedService<AuthenticationStartupCheck>();

        var authentication = services.AddAuthentication(PolicyScheme)
            .AddPolicyScheme(PolicyScheme, "TwoPC API callers", o => o.ForwardDefaultSelector = http => SelectScheme(http.Request, options.Bearer))
            .AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(ApiKeyScheme, null)
            .AddScheme<ParticipantSignatureOptions, ParticipantSignatureAuthenticationHandler>(ParticipantScheme, o => o.ClockSkew = options.ParticipantClockSkew);
        if (options.Bearer)
        {
            // Issuer, audiences, authority or signing keys come from Authentication:Schemes:Bearer (bound by ASP.NET Core).
            authentication.AddJwtBearer(o => o.Events = new JwtBearerEvents
            {
                OnTokenValidated = BearerTokenValidated,
                OnChallenge = BearerChallengeAsync,
            });
        }

        services.AddAuthorizationBuilder()
            .AddPolicy(CallerPolicy, policy => policy.AddAuthenticationSchemes(PolicyScheme).AddRequirements(new CallerRequirement(options)));
        return services;
    }

    /// <summary>Whether the request presents credentials of any kind (wrong ones are refused even with anonymous access on).</summary>
    internal static bool PresentsCredentials(HttpRequest request) =>
        request.Headers.Authorization.Count > 0 || !string.IsNullOrEmpty(request.Headers[TwoPCApiEndpoints.ApiKeyHeader].ToString()) || ParticipantSignatureAuthenticationHandler.IsSigned(request);

    private static string SelectScheme(HttpRequest request, bool bearer)
    {
        if (ParticipantSignatureAuthenticationHandler.IsSigned(request))
        {
            return ParticipantScheme;
        }

        return bearer && request.Headers.Authorization.Count == 1 && (request.Headers.Authorization[0]?.StartsWith(JwtBearerDefaults.AuthenticationScheme + " ", StringComparison.OrdinalIgnoreCase) ?? false)
            ? JwtBearerDefaults.AuthenticationScheme
            : ApiKeyScheme;
    }

    // The token's subject becomes a client; its own claims are not read (a token cannot make its bearer a participant).
    private static Task BearerTokenValidated(TokenValidatedContext context)
    {
        var principal = context.Principal!;
        var subject = principal.FindFirst("sub")?.Value ?? principal.FindFirst(System.Security.Claims.ClaimTypes.NameIdentifier)?.Value;
        if (string.IsNullOrWhiteSpace(subject) || subject.Length > 256)
        {
            context.Fail("the token has no subject (sub) claim");
            return Task.CompletedTask;
        }

        principal.AddIdentity(ApiCaller.Identity(CallerKind.Client, subject, "bearer:" + subject));
        return Task.CompletedTask;
    }

    private static async Task BearerChallengeAsync(JwtBearerChallengeContext context)
    {
        context.HandleResponse();
        context.Response.Headers.Append(Microsoft.Net.Http.Headers.HeaderNames.WWWAuthenticate, JwtBearerDefaults.AuthenticationScheme);
        await AuthenticationProblem.WriteAsync(context.HttpContext, "Refused: the bearer token is missing, expired, or not issued and signed as Authentication:Schemes:Bearer requires.").ConfigureAwait(false);
    }
}
