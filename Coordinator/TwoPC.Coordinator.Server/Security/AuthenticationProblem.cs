using Microsoft.Net.Http.Headers;

namespace TwoPC.Coordinator.Server.Security;

/// <summary>The 401 answer of the transaction API: a problem detail and the schemes it accepts.</summary>
internal static class AuthenticationProblem
{
    public static async Task WriteAsync(HttpContext context, string detail)
    {
        context.Response.StatusCode = StatusCodes.Status401Unauthorized;
        context.Response.Headers.Append(HeaderNames.WWWAuthenticate, ApiKeyAuthenticationHandler.HeaderScheme);
        context.Response.Headers.Append(HeaderNames.WWWAuthenticate, TwoPC.Client.RequestSignature.Scheme);
        var problems = context.RequestServices.GetRequiredService<IProblemDetailsService>();
        await problems.WriteAsync(new ProblemDetailsContext
        {
            HttpContext = context,
            ProblemDetails = { Status = StatusCodes.Status401Unauthorized, Title = "Unauthorized", Detail = detail },
        }).ConfigureAwait(false);
    }
}
