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
