using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using TwoPC.Client;
using TwoPC.Coordinator.Server.Security;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;
using TwoPC.Protocol;
using TwoPC.Recovery;
using TwoPC.Transactions;

namespace TwoPC.Coordinator.Server;

/// <summary>The coordinator's HTTP/JSON API.</summary>
public static partial class TwoPCApiEndpoints
{
    /// <summary>The header carrying the admin API key (configuration <c>Admin:ApiKey</c>).</summary>
    public const string ApiKeyHeader = "X-Api-Key";

    /// <summary>
    /// Maps <c>/transactions</c> (begin, status, remote branches, commit, rollback) and <c>/admin</c>
    /// (heuristics, forget, recover, in-doubt branches, forced commit/rollback of a branch; guarded by
    /// <see cref="ApiKeyHeader"/>). Needs the services of
    /// <see cref="CoordinatorServer.AddTwoPCServer"/>.
    /// </summary>
    public static IEndpointRouteBuilder MapTwoPCApi(this IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        endpoints.MapGet("/info", (TransactionRegistry registry) => Results.Ok(new CoordinatorInfoDto(registry.Coordinator.NodeId.ToString(), registry.Coordinator.Epoch) { SharedLog = registry.Coordinator.Lease is not null }))
            .WithTags("Coordinator").Produces<CoordinatorInfoDto>()
            .RequireAuthorization(ApiAuthentication.CallerPolicy).ProducesProblem(StatusCodes.Status401Unauthorized);
        var tx = endpoints.MapGroup("/transactions").WithTags("Transactions");

        // Every transaction endpoint: an authenticated caller (or anonymous, where allowed), acting within its rights.
        tx.RequireAuthorization(ApiAuthentication.CallerPolicy).AddEndpointFilter(TransactionAccess.CheckAsync)
            .ProducesProblem(StatusCodes.Status401Unauthorized).ProducesProblem(StatusCodes.Status403Forbidden).ProducesProblem(StatusCodes.Status404NotFound);
        var limits = endpoints.ServiceProvider.GetService<IOptions<CoordinatorLimitsOptions>>()?.Value ?? new CoordinatorLimitsOptions();
        tx.WithRequestLimits(limits.MaxRequestBodySize);
        tx.MapPost("/", BeginAsync).Accepts<BeginTransactionRequest>(true, "application/json")
            .Produces<BeginTransactionResponse>(StatusCodes.Status201Created).ProducesProblem(StatusCodes.Status400BadRequest);
        tx.MapGet("/{id}", GetStatus)
            .Produces<TransactionStatusDto>().ProducesProblem(StatusCodes.Status400BadRequest);
        tx.MapPost("/{id}/branches", RegisterBranchAsync).Accepts<RegisterBranchRequest>("application/json")
            .Produces<RegisterBranchResponse>(StatusCodes.Status201Created)
            .ProducesProblem(StatusCodes.Status400BadRequest).ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status409Conflict)
            .ProducesProblem(StatusCodes.Status403Forbidden)
            .ProducesProblem(StatusCodes.Status422UnprocessableEntity);
        tx.MapPost("/{id}/branches/{xid}/prepared", ReportPreparedAsync).Accepts<ReportPreparedRequest>("application/json")
            .Produces(StatusCodes.Status204NoContent)
            .ProducesProblem(StatusCodes.Status400BadRequest).ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status409Conflict)
            .ProducesProblem(StatusCodes.Status403Forbidden);
        tx.MapPost("/{id}/commit", (string id, HttpRequest request, TransactionRegistry registry, CancellationToken ct) => CommitAsync(id, request, registry, ct))
            .Accepts<CommitRequest>(true, "application/json")
            .Produces<OutcomeDto>().ProducesProblem(StatusCodes.Status400BadRequest).ProducesProblem(StatusCodes.Status404NotFound);
        tx.MapPost("/{id}/rollback", (string id, TransactionRegistry registry, CancellationToken ct) => FinishAsync(id, registry, commit: false, ct))
            .Produces<OutcomeDto>().ProducesProblem(StatusCodes.Status400BadRequest).ProducesProblem(StatusCodes.Status404NotFound);

        Messaging.MapMessaging(tx).WithMetadata(new RequestSizeLimitAttribute(limits.MaxMessageRequestBodySize));

        var admin = endpoints.MapGroup("/admin").WithTags("Admin").AddEndpointFilter(RequireApiKeyAsync)
            .ProducesProblem(StatusCodes.Status401Unauthorized);
        admin.WithRequestLimits(limits.MaxRequestBodySize);
        admin.MapGet("/heuristics", ListHeuristics).Produces<HeuristicDto[]>();
        admin.MapPost("/transactions/{id}/forget", ForgetAsync).ProducesProblem(StatusCodes.Status404NotFound);
        admin.MapPost("/recover", RecoverAsync).Produces<RecoveryReportDto>();
        admin.MapGet("/in-doubt", ListInDoubt).Produces<InDoubtBranchDto[]>();
        admin.MapPost("/branches/{xid}/commit", (string xid, HttpRequest request, TransactionRegistry registry, ILoggerFactory loggers, CancellationToken ct) => ForceAsync(xid, request, registry, loggers, ForcedAction.Commit, ct))
            .WithForceMetadata();
        admin.MapPost("/branches/{xid}/rollback", (string xid, HttpRequest request, TransactionRegistry registry, ILoggerFactory loggers, CancellationToken ct) => ForceAsync(xid, request, registry, loggers, ForcedAction.Rollback, ct))
            .WithForceMetadata();
        return endpoints;
    }

    private static async Task<IResult> BeginAsync(HttpRequest request, TransactionRegistry registry)
    {
        var body = await ReadBodyAsync<BeginTransactionRequest>(request, optional: true);
        if (body.Error is not null)
        {
            return body.Error;
        }

        TimeSpan? timeout = null;
        if (body.Value?.TimeoutSeconds is { } seconds)
        {
            if (!double.IsFinite(seconds) || seconds <= 0 || seconds > TimeSpan.MaxValue.TotalSeconds / 2)
            {
                return BadRequest("timeoutSeconds must be a positive number.");
            }

            timeout = TimeSpan.FromSeconds(seconds);
        }

        try
        {
            var tx = registry.Begin(timeout, ApiCaller.From(request.HttpContext.User).Owner);
            return Results.Created($"/transactions/{tx.Id}", new BeginTransactionResponse(tx.Id.ToString(), tx.Deadline));
        }
        catch (ArgumentOutOfRangeException ex)
        {
            return BadRequest(ex.Message.Split(Environment.NewLine)[0]);
        }
        catch (InvalidOperationException ex)
        {
            return Results.Problem(statusCode: StatusCodes.Status503ServiceUnavailable, title: "The coordinator is not accepting transactions", detail: ex.Message);
        }
    }

    // Any node of a cluster on a shared log answers for any node's transaction (the log is read for another node's).
    private static async Task<IResult> GetStatus(string id, TransactionRegistry registry, CancellationToken cancellationToken) =>
        TryParseId(id, out var txId, out var error)
            ? Results.Ok((await registry.Coordinator.GetStatusAsync(txId, cancellationToken)).ToDto())
            : error;

    private static async Task<IResult> RegisterBranchAsync(string id, HttpRequest request, TransactionRegistry registry, ParticipantDirectory participants, ILoggerFactory loggers)
    {
        if (!TryParseId(id, out var txId, out var error))
        {
            return error;
        }

        var body = await ReadBodyAsync<RegisterBranchRequest>(request, optional: false);
        if (body.Error is not null)
        {
            return body.Error;
        }

        var name = body.Value!.ResourceManager;
        if (!ResourceManagerName.IsValid(name))
        {
            return BadRequest($"resourceManager must be {ResourceManagerName.Rule}.");
        }

        if (TransactionAccess.RefuseBranchName(request.HttpContext, name) is { } refused)
        {
            return refused;
        }

        if (!HttpParticipantResourceManager.TryParseCallbackUrl(body.Value.CallbackUrl, out var callbackUrl))
        {
            return BadRequest("callbackUrl must be an absolute http or https URL without query, fragment or credentials.");
        }

        if (CallbackRefusal(participants, name, callbackUrl) is { } refusal)
        {
            ParticipantCallLog.RegistrationRefused(loggers.CreateLogger("TwoPC.Coordinator.Server.Participants"), txId.ToString(), TransactionIdFormatException.Sanitize(name),
                TransactionIdFormatException.Sanitize(callbackUrl.AbsoluteUri), refusal);
            return Results.Problem(statusCode: StatusCodes.Status403Forbidden, title: "Callback URL not allowed", detail: refusal);
        }

        if (!registry.TryGet(txId, out var tx))
        {
            return NotOpen(registry, txId);
        }

        HttpParticipantResourceManager rm;
        try
        {
            rm = registry.GetOrRegisterRemote(name);
        }
        catch (InvalidOperationException ex)
        {
            return Results.Problem(statusCode: StatusCodes.Status409Conflict, title: "Resource manager name in use", detail: ex.Message);
        }

        if (!BranchLimits.TryReserve(request.HttpContext, tx, out var tooMany))
        {
            return tooMany;
        }

        try
        {
            var xid = default(Xid);
            tx.Enlist(x =>
            {
                xid = x;
                return rm.CreateBranch(x, callbackUrl);
            });
            return Results.Created($"/transactions/{txId}", new RegisterBranchResponse(xid!.ToString(), tx.Deadline));
        }
        catch (InvalidOperationException)
        {
            return NotActive(txId);
        }
    }

    /// <summary>
    /// Why the coordinator will not call <paramref name="name"/> back at <paramref name="callbackUrl"/> (null when it will):
    /// a participant's identity and callback URL are bound by configuration, never by the registering request.
    /// </summary>
    private static string? CallbackRefusal(ParticipantDirectory participants, string name, Uri callbackUrl)
    {
        if (participants.TryGet(name, out var participant))
        {
            return ParticipantDirectory.SameCallbackUrl(callbackUrl, participant.CallbackUrl)
                ? null
                : $"callbackUrl is not the callback URL configured for participant {TransactionIdFormatException.Sanitize(name)} (Coordinator:Participants:{{name}}:CallbackUrl).";
        }

        if (!participants.AllowUnconfiguredParticipants)
        {
            return $"Participant {TransactionIdFormatException.Sanitize(name)} is not configured: the coordinator calls back only participants configured under Coordinator:Participants:{{name}} (CallbackUrl, Key).";
        }

        return participants.AllowsOrigin(callbackUrl)
            ? null
            : participants.AllowedCallbackOrigins.Count == 0
                ? "callbackUrl is refused: Coordinator:AllowedCallbackOrigins is empty, so no unconfigured participant's URL is allowed."
                : "callbackUrl's origin (scheme://host:port) is not in Coordinator:AllowedCallbackOrigins.";
    }

    private static async Task<IResult> FinishAsync(string id, TransactionRegistry registry, bool commit, CancellationToken cancellationToken)
    {
        if (!TryParseId(id, out var txId, out var error))
        {
            return error;
        }

        if (registry.TryGet(txId, out var tx))
        {
            // The request's token only stops the wait (cancelling a commit before the decision would roll it back).
            var outcome = commit
                ? await tx.CommitAsync(CancellationToken.None).WaitAsync(cancellationToken)
                : await tx.RollbackAsync(CancellationToken.None).WaitAsync(cancellationToken);
            registry.Forget(txId);
            return Results.Ok(outcome.ToDto());
        }

        var status = registry.Coordinator.GetStatus(txId);
        return status switch
        {
            { Outcome: { } known } => Results.Ok(known.ToDto()),
            { State: TransactionState.Unknown } => NotFound(txId),
            _ => Results.Problem(statusCode: StatusCodes.Status409Conflict, title: "Transaction is finishing", detail: $"Transaction {txId} is {status.State}; ask GET /transactions/{txId} later."),
        };
    }

    private static IResult ListHeuristics(TransactionRegistry registry, ILoggerFactory loggers)
    {
        var heuristics = registry.Coordinator.GetHeuristics();
        var logger = AdminLogger(loggers);
        Log.AdminListedHeuristics(logger, heuristics.Count);
        return Results.Ok(heuristics.Select(h => h.ToDto()).ToArray());
    }

    private static async Task<IResult> ForgetAsync(string id, TransactionRegistry registry, ILoggerFactory loggers, CancellationToken cancellationToken)
    {
        if (!TryParseId(id, out var txId, out var error))
        {
            return error;
        }

        var logger = AdminLogger(loggers);
        if (await registry.Coordinator.ForgetHeuristicAsync(txId, cancellationToken))
        {
            Log.AdminForgotHeuristic(logger, txId);
            return Results.NoContent();
        }

        Log.AdminForgetNotFound(logger, txId);
        return Results.Problem(statusCode: StatusCodes.Status404NotFound, title: "No heuristic outcome", detail: $"No heuristic outcome is on record for {txId}.");
    }

    private static async Task<IResult> RecoverAsync(TransactionRegistry registry, ILoggerFactory loggers, CancellationToken cancellationToken)
    {
        var report = await registry.Coordinator.RecoverAsync(cancellationToken);
        var dto = report.ToDto();
        var logger = AdminLogger(loggers);
        Log.AdminRecovered(logger, dto.Branches.Count, dto.LeftInDoubt, dto.FailedResourceManagers.Count);
        return Results.Ok(dto);
    }

    private static IResult ListInDoubt(TransactionRegistry registry, ILoggerFactory loggers)
    {
        var inDoubt = registry.Coordinator.GetInDoubt();
        var logger = AdminLogger(loggers);
        Log.AdminListedInDoubt(logger, inDoubt.Count);
        return Results.Ok(inDoubt.Select(b => b.ToDto()).ToArray());
    }

    private static RouteHandlerBuilder WithForceMetadata(this RouteHandlerBuilder route) =>
        route.Accepts<ForceBranchRequest>("application/json")
            .Produces<ForcedBranchDto>()
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict)
            .ProducesProblem(StatusCodes.Status502BadGateway)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);

    /// <summary>An operator forces one branch; the coordinator's safety rules decide whether it may (409 when not).</summary>
    private static async Task<IResult> ForceAsync(string xid, HttpRequest request, TransactionRegistry registry, ILoggerFactory loggers, ForcedAction action, CancellationToken cancellationToken)
    {
        var logger = AdminLogger(loggers);
        var path = TransactionIdFormatException.Sanitize(request.Path.Value ?? string.Empty);
        var verb = action == ForcedAction.Commit ? "commit" : "rollback";
        if (!Xid.TryParse(xid, out var branch))
        {
            var detail = $"{TransactionIdFormatException.Sanitize(xid)} is not an XID (expected {{formatId as 8 hex digits}}_{{gtrid}}_{{bqual}}).";
            Log.AdminBadRequest(logger, path, detail);
            return BadRequest(detail);
        }

        var shownXid = branch.ToString();

        var body = await ReadBodyAsync<ForceBranchRequest>(request, optional: false);
        if (body.Error is not null)
        {
            Log.AdminBadRequest(logger, path, "malformed body");
            return body.Error;
        }

        var name = body.Value!.ResourceManager;
        if (!ResourceManagerName.IsValid(name))
        {
            Log.AdminBadRequest(logger, path, "resourceManager missing or invalid");
            return BadRequest($"resourceManager must be {ResourceManagerName.Rule}.");
        }

        // Only resource managers the coordinator knows (configured, used since start, or named by a logged decision or a
        // heuristic record, which keep each branch's callback URL): the server's resolver would make any name a remote
        // participant, without a callback URL to reach it.
        if (!registry.Coordinator.ResourceManagers.Any(r => string.Equals(r.Name, name, StringComparison.Ordinal))
            && !registry.Coordinator.GetHeuristics().Any(h => h.Branches.Any(b => string.Equals(b.ResourceManager, name, StringComparison.Ordinal))))
        {
            var shownName = TransactionIdFormatException.Sanitize(name);
            var detail = $"No resource manager {shownName} is registered with the coordinator.";
            Log.AdminForceRefused(logger, verb, shownXid, shownName, StatusCodes.Status404NotFound, detail);
            return Results.Problem(statusCode: StatusCodes.Status404NotFound, title: "Unknown resource manager", detail: detail);
        }

        ForcedBranchResult result;
        try
        {
            // The request's token only cancels the wait for a running recovery pass; once the resource manager is
            // called, the call runs to its end (a call cut off half-way would leave the branch's state unknown).
            result = action == ForcedAction.Commit
                ? await registry.Coordinator.ForceCommitBranchAsync(name, branch, body.Value.Override, cancellationToken)
                : await registry.Coordinator.ForceRollbackBranchAsync(name, branch, cancellationToken);
        }
        catch (InvalidOperationException ex)
        {
            Log.AdminForceFailed(logger, verb, shownXid, name, ex.Message);
            return Results.Problem(statusCode: StatusCodes.Status503ServiceUnavailable, title: "The coordinator is not running", detail: ex.Message);
        }

        switch (result.Status)
        {
            case ForcedBranchStatus.Completed:
                var dto = result.ToDto();
                Log.AdminForcedBranch(logger, verb, shownXid, name, dto.Outcome);
                return Results.Ok(dto);
            case ForcedBranchStatus.Refused:
                Log.AdminForceRefused(logger, verb, shownXid, name, StatusCodes.Status409Conflict, result.Message);
                return Results.Problem(statusCode: StatusCodes.Status409Conflict, title: "Refused by the safety rules", detail: result.Message);
            case ForcedBranchStatus.UnknownResourceManager:
                Log.AdminForceRefused(logger, verb, shownXid, name, StatusCodes.Status404NotFound, result.Message);
                return Results.Problem(statusCode: StatusCodes.Status404NotFound, title: "Unknown resource manager", detail: result.Message);
            default:
                Log.AdminForceFailed(logger, verb, shownXid, name, result.Message);
                return Results.Problem(statusCode: StatusCodes.Status502BadGateway, title: "The resource manager failed", detail: result.Message);
        }
    }

    private static async ValueTask<object?> RequireApiKeyAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        var expected = http.RequestServices.GetRequiredService<IConfiguration>()["Admin:ApiKey"];
        string? reason = null;
        if (string.IsNullOrEmpty(expected))
        {
            reason = "admin endpoints are disabled (no Admin:ApiKey configured)";
        }
        else if (!http.Request.Headers.TryGetValue(ApiKeyHeader, out var given) || given.Count != 1
            || !CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(given[0] ?? string.Empty), Encoding.UTF8.GetBytes(expected)))
        {
            reason = "missing or wrong API key";
        }

        if (reason is not null)
        {
            var logger = AdminLogger(http.RequestServices.GetRequiredService<ILoggerFactory>());
            var path = http.Request.Path.Value ?? string.Empty;
            Log.AdminRefused(logger, path, reason);
            return Results.Problem(statusCode: StatusCodes.Status401Unauthorized, title: "Unauthorized", detail: $"Admin endpoints require the {ApiKeyHeader} header.");
        }

        return await next(context);
    }

    private static ILogger AdminLogger(ILoggerFactory loggers) => loggers.CreateLogger("TwoPC.Coordinator.Server.Admin");

    internal static bool TryParseId(string id, out GlobalTransactionId transactionId, out IResult error)
    {
        if (GlobalTransactionId.TryParse(id, out transactionId))
        {
            error = null!;
            return true;
        }

        error = BadRequest($"{TransactionIdFormatException.Sanitize(id)} is not a transaction id.");
        return false;
    }

    internal static async Task<(T? Value, IResult? Error)> ReadBodyAsync<T>(HttpRequest request, bool optional)
        where T : class
    {
        if (request.ContentLength == 0 || (request.ContentLength is null && request.Headers.TransferEncoding.Count == 0))
        {
            return optional ? (null, null) : (null, BadRequest("A JSON body is required."));
        }

        if (!request.HasJsonContentType())
        {
            return (null, Results.Problem(statusCode: StatusCodes.Status415UnsupportedMediaType, title: "Unsupported media type", detail: "Send application/json."));
        }

        try
        {
            var value = await request.ReadFromJsonAsync<T>(request.HttpContext.RequestAborted);
            return value is null && !optional ? (null, BadRequest("A JSON body is required.")) : (value, null);
        }
        catch (JsonException)
        {
            return (null, BadRequest("The body is not valid JSON for this request."));
        }
    }

    internal static IResult BadRequest(string detail) =>
        Results.Problem(statusCode: StatusCodes.Status400BadRequest, title: "Bad request", detail: detail);

    internal static IResult NotFound(GlobalTransactionId id) =>
        Results.Problem(statusCode: StatusCodes.Status404NotFound, title: "Unknown transaction", detail: $"The coordinator has no record of {id}.");

    private static IResult NotActive(GlobalTransactionId id) =>
        Results.Problem(statusCode: StatusCodes.Status409Conflict, title: "Transaction not active", detail: $"Transaction {id} is no longer active; branches and messages can only be added while it is.");

    /// <summary>Why a transaction the API did not find open cannot take a branch or a message: 404 unknown, 409 finishing or finished.</summary>
    internal static IResult NotOpen(TransactionRegistry registry, GlobalTransactionId id) =>
        registry.Coordinator.GetStatus(id).State == TransactionState.Unknown ? NotFound(id) : NotActive(id);
}
