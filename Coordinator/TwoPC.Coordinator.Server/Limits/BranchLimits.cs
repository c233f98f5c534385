using TwoPC.Protocol;

namespace TwoPC.Coordinator.Server;

/// <summary>The API's side of <see cref="CoordinatorLimitsOptions.MaxBranchesPerTransaction"/> and of the request limits of its endpoints.</summary>
internal static class BranchLimits
{
    /// <summary>Takes a branch slot of <paramref name="transaction"/>, or answers why not (422 problem detail).</summary>
    public static bool TryReserve(HttpContext httpContext, GlobalTransaction transaction, out IResult refusal)
    {
        var limiter = httpContext.RequestServices.GetRequiredService<BranchLimiter>();
        if (limiter.TryReserve(transaction))
        {
            refusal = null!;
            return true;
        }

        var logger = httpContext.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger("TwoPC.Coordinator.Server.Limits");
        Log.BranchRefused(logger, transaction.Id, limiter.Max);
        refusal = Results.Problem(
            statusCode: StatusCodes.Status422UnprocessableEntity,
            title: "Too many branches",
            detail: $"Transaction {transaction.Id} has {limiter.Max} branches, the most one transaction may have (Coordinator:Limits:MaxBranchesPerTransaction); the transaction itself is unchanged and can still commit or roll back.");
        return false;
    }

    /// <summary>The body limit of every endpoint of <paramref name="group"/> (one may raise its own), and the problems a limit answers.</summary>
    public static RouteGroupBuilder WithRequestLimits(this RouteGroupBuilder group, long maxRequestBodySize)
    {
        group.WithMetadata(new Microsoft.AspNetCore.Mvc.RequestSizeLimitAttribute(maxRequestBodySize));
        group.ProducesProblem(StatusCodes.Status408RequestTimeout)
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);
        return group;
    }
}
