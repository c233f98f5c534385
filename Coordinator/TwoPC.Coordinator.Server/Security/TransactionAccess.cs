using TwoPC.Transactions;

namespace TwoPC.Coordinator.Server.Security;

/// <summary>
/// Who may do what in the transaction API, as endpoint filters: a client begins transactions and decides, reads and
/// publishes in its own only (any other transaction is answered exactly as one that does not exist: 404); a participant
/// registers branches under its own name and reads the status of any transaction (its recovery asks); the admin key
/// reads any status. An anonymous caller (only with <c>AllowAnonymous</c>, on loopback) acts like a client in the
/// transactions begun anonymously and like a participant that has no key.
/// </summary>
internal static class TransactionAccess
{
    /// <summary>
    /// The filter of the <c>/transactions</c> group: picks the rule by the endpoint's method and route. A route this
    /// does not know is decided by the owner only, so an endpoint added later is closed until given its rule.
    /// </summary>
    public static ValueTask<object?> CheckAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        ArgumentNullException.ThrowIfNull(context);
        var http = context.HttpContext;
        var pattern = (http.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText?.TrimEnd('/') ?? string.Empty;
        var method = http.Request.Method;
        return (method, pattern) switch
        {
            _ when HttpMethods.IsPost(method) && pattern.EndsWith("/transactions", StringComparison.Ordinal) => BeginAsync(context, next),
            _ when HttpMethods.IsGet(method) && pattern.EndsWith("/transactions/{id}", StringComparison.Ordinal) => ReadAsync(context, next),
            _ when HttpMethods.IsPost(method) && pattern.EndsWith("/transactions/{id}/branches", StringComparison.Ordinal) => RegisterAsync(context, next),
            _ when HttpMethods.IsPost(method) && pattern.EndsWith("/transactions/{id}/branches/{xid}/prepared", StringComparison.Ordinal) => RegisterAsync(context, next),
            _ => DecideAsync(context, next),
        };
    }

    /// <summary><c>POST /transactions</c>: clients (and anonymous callers) only.</summary>
    private static async ValueTask<object?> BeginAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var caller = ApiCaller.From(context.HttpContext.User);
        return caller.Kind is CallerKind.Client or CallerKind.Anonymous
            ? await next(context).ConfigureAwait(false)
            : Forbidden(context.HttpContext, caller, "only clients begin transactions");
    }

    /// <summary><c>GET /transactions/{id}</c>: the client that began it; participants and the admin key, any.</summary>
    private static async ValueTask<object?> ReadAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var caller = ApiCaller.From(context.HttpContext.User);
        return caller.Kind is CallerKind.Client && NotOwned(context.HttpContext, caller) is { } notFound
            ? notFound
            : await next(context).ConfigureAwait(false);
    }

    /// <summary>Commit, rollback, messages: only the client that began the transaction.</summary>
    private static async ValueTask<object?> DecideAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var caller = ApiCaller.From(context.HttpContext.User);
        if (caller.Kind is CallerKind.Participant or CallerKind.Admin)
        {
            return Forbidden(context.HttpContext, caller, "only the client that began a transaction commits it, rolls it back or publishes in it");
        }

        return NotOwned(context.HttpContext, caller) ?? await next(context).ConfigureAwait(false);
    }

    /// <summary>
    /// <c>POST /transactions/{id}/branches</c> and <c>/branches/{xid}/prepared</c> (a Yes vote reported early): participants
    /// (the name is checked by <see cref="RefuseBranchName"/>).
    /// </summary>
    private static async ValueTask<object?> RegisterAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var caller = ApiCaller.From(context.HttpContext.User);
        return caller.Kind is CallerKind.Participant or CallerKind.Anonymous
            ? await next(context).ConfigureAwait(false)
            : Forbidden(context.HttpContext, caller, "branches are registered by participants, with requests signed with their own key");
    }

    /// <summary>
    /// A 403 problem when the caller may not register a branch under <paramref name="name"/>: a participant only under its
    /// own; an anonymous caller never under a participant configured with a key (its requests must be signed).
    /// </summary>
    public static IResult? RefuseBranchName(HttpContext http, string name)
    {
        var caller = ApiCaller.From(http.User);
        if (caller.Kind == CallerKind.Participant && !string.Equals(caller.Name, name, StringComparison.Ordinal))
        {
            return Forbidden(http, caller, "a participant registers branches under its own name only");
        }

        if (caller.Kind == CallerKind.Anonymous && http.RequestServices.GetRequiredService<ParticipantDirectory>().TryGet(name, out var configured) && configured.Key is not null)
        {
            return Forbidden(http, caller, "this participant is configured with a key: its requests must be signed with it");
        }

        return null;
    }

    /// <summary>404, worded as for an unknown transaction, when <paramref name="caller"/> did not begin the one in the route.</summary>
    private static IResult? NotOwned(HttpContext http, ApiCaller caller)
    {
        // A malformed id is the endpoint's 400; it names no transaction.
        if (http.Request.RouteValues["id"] is not string id || !GlobalTransactionId.TryParse(id, out var transactionId))
        {
            return null;
        }

        var registry = http.RequestServices.GetRequiredService<TransactionRegistry>();
        return registry.IsOwnedBy(transactionId, caller.Owner) ? null : TwoPCApiEndpoints.NotFound(transactionId);
    }

    private static IResult Forbidden(HttpContext http, ApiCaller caller, string rule)
    {
        var logger = http.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(TransactionAccess).FullName!);
        Log.CallerForbidden(logger, caller.ToString(), http.Request.Method, TransactionIdFormatException.Sanitize(http.Request.Path.Value), rule);
        return Results.Problem(statusCode: StatusCodes.Status403Forbidden, title: "Forbidden", detail: $"Refused for {caller}: {rule}.");
    }
}
