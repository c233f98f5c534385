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

// The /admin endpoints (an operator's view and hands: heuristics, forget, recover, in-doubt branches, forced
// actions) and their API-key filter; the routes are mapped in TwoPCApiEndpoints.cs.
public static partial class TwoPCApiEndpoints
{
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
        bool forgotten;
        try
        {
            forgotten = await registry.Coordinator.ForgetHeuristicAsync(txId, cancellationToken);
        }
        catch (InvalidOperationException ex)
        {
            // Its commit marker lives in a last resource this coordinator does not have: nothing was done, the record stays.
            return Results.Problem(statusCode: StatusCodes.Status409Conflict, title: "Cannot forget yet", detail: ex.Message);
        }

        if (forgotten)
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
}
