using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;

namespace TwoPC.Coordinator.Server.Security;

/// <summary>
/// <c>Authorization: ApiKey {key}</c> with a client's key (<c>Coordinator:Clients:{name}:ApiKey</c>): the caller is that
/// client. <c>X-Api-Key</c> with the admin key (<c>Admin:ApiKey</c>): the caller is the operator, who may read any
/// transaction's status (the admin endpoints keep their own check of the same header). Also the scheme that answers a
/// request without credentials: 401 with a problem detail saying what to send.
/// </summary>
internal sealed class ApiKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory logger,
    UrlEncoder encoder,
    ApiClients clients)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    /// <summary>The scheme word of the <c>Authorization</c> header.</summary>
    public const string HeaderScheme = "ApiKey";

    private const int MaxKeyLength = 1024;

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var headers = Request.Headers;
        if (headers.Authorization.Count > 0)
        {
            var value = headers.Authorization.Count == 1 ? headers.Authorization[0] ?? string.Empty : string.Empty;
            if (!value.StartsWith(HeaderScheme + " ", StringComparison.OrdinalIgnoreCase))
            {
                return Task.FromResult(Refuse("the Authorization header's scheme is not one this coordinator accepts"));
            }

            var key = value[(HeaderScheme.Length + 1)..].Trim();
            if (key.Length == 0 || key.Length > MaxKeyLength || !clients.TryFindClient(key, out var name))
            {
                return Task.FromResult(Refuse("the API key is not a configured client's"));
            }

            return Task.FromResult(Success(ApiCaller.Identity(CallerKind.Client, name, "apikey:" + name)));
        }

        // An empty X-Api-Key is no credential (the admin client sends one when it has no key, for show).
        if (headers.TryGetValue(TwoPCApiEndpoints.ApiKeyHeader, out var admin) && !string.IsNullOrEmpty(admin.ToString()))
        {
            if (admin.Count != 1 || admin[0] is not { Length: > 0 and <= MaxKeyLength } adminKey || !clients.IsAdmin(adminKey))
            {
                return Task.FromResult(Refuse($"the {TwoPCApiEndpoints.ApiKeyHeader} header is not the admin key"));
            }

            return Task.FromResult(Success(ApiCaller.Identity(CallerKind.Admin, "admin", null)));
        }

        return Task.FromResult(AuthenticateResult.NoResult());
    }

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        var result = await HandleAuthenticateOnceSafeAsync().ConfigureAwait(false);
        var detail = result.Failure is { } failure
            ? $"Refused: {failure.Message}."
            : "The transaction API needs credentials: Authorization: ApiKey {key} (a client), Authorization: Bearer {token} where configured, or a participant's request signature (TwoPC-Key-Id, TwoPC-Timestamp, TwoPC-Signature).";
        await AuthenticationProblem.WriteAsync(Context, detail).ConfigureAwait(false);
    }

    private AuthenticateResult Success(System.Security.Claims.ClaimsIdentity identity) =>
        AuthenticateResult.Success(new AuthenticationTicket(new System.Security.Claims.ClaimsPrincipal(identity), Scheme.Name));

    private AuthenticateResult Refuse(string reason)
    {
        Log.CredentialsRefused(Logger, Scheme.Name, TwoPC.Transactions.TransactionIdFormatException.Sanitize(Request.Path.Value), reason);
        return AuthenticateResult.Fail(reason);
    }
}
