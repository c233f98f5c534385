using Microsoft.AspNetCore.Authorization;

namespace TwoPC.Coordinator.Server.Security;

/// <summary>
/// The transaction API's one rule before any endpoint runs: an authenticated caller, or — with
/// <c>Coordinator:Authentication:AllowAnonymous</c> — a caller that presents no credentials at all, over a connection
/// that arrived at a loopback address. Presented credentials that do not hold are refused in either case. Its own
/// handler (ASP.NET Core calls a requirement that is one).
/// </summary>
internal sealed class CallerRequirement(ApiAuthenticationOptions options) : AuthorizationHandler<CallerRequirement>, IAuthorizationRequirement
{
    protected override Task HandleRequirementAsync(AuthorizationHandlerContext context, CallerRequirement requirement)
    {
        if (ApiCaller.From(context.User).Kind != CallerKind.Anonymous)
        {
            context.Succeed(requirement);
        }
        else if (options.AllowAnonymous && context.Resource is HttpContext http && !ApiAuthentication.PresentsCredentials(http.Request)
            && http.Connection.LocalIpAddress is { } local && System.Net.IPAddress.IsLoopback(local))
        {
            context.Succeed(requirement);
        }

        return Task.CompletedTask;
    }
}
