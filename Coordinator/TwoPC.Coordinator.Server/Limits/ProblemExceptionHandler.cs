using System.Globalization;
using Microsoft.AspNetCore.Diagnostics;
using TwoPC.Durability;
using TwoPC.Participants;
using TwoPC.Protocol;
using TwoPC.Transactions;

namespace TwoPC.Coordinator.Server;

/// <summary>
/// Answers what a request ran into as a problem detail (RFC 7807) with its own status instead of a bare 500: a rejected
/// request body (413 too large, 408 too slow, 400 malformed, from <see cref="BadHttpRequestException"/>), and every state
/// in which the coordinator cannot decide now (503: the log has failed, the coordinator is not running or is stopping,
/// the live-transaction limit), saying what happened.
/// </summary>
internal sealed class ProblemExceptionHandler(IProblemDetailsService problems, ILogger<ProblemExceptionHandler> logger) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        if (Describe(httpContext, exception) is not { } problem || httpContext.Response.HasStarted)
        {
            return false;
        }

        var method = httpContext.Request.Method;
        var path = TransactionIdFormatException.Sanitize(httpContext.Request.Path.Value ?? string.Empty);
        if (problem.Status == StatusCodes.Status503ServiceUnavailable)
        {
            Log.CoordinatorCannotDecide(logger, method, path, problem.Status, problem.Detail);
        }
        else
        {
            Log.BadRequestRejected(logger, method, path, problem.Status, problem.Detail);
        }

        httpContext.Response.StatusCode = problem.Status;
        if (problem.RetryAfter is { } retryAfter)
        {
            httpContext.Response.Headers.RetryAfter = ((long)Math.Ceiling(retryAfter.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
        }

        return await problems.TryWriteAsync(new ProblemDetailsContext
        {
            HttpContext = httpContext,
            Exception = exception,
            ProblemDetails = { Status = problem.Status, Title = problem.Title, Detail = problem.Detail },
        }).ConfigureAwait(false);
    }

    private static Problem? Describe(HttpContext httpContext, Exception exception) => exception switch
    {
        BadHttpRequestException bad => new(bad.StatusCode, bad.StatusCode switch
        {
            StatusCodes.Status413PayloadTooLarge => "Request body too large",
            StatusCodes.Status408RequestTimeout => "Request body too slow",
            _ => "Bad request",
        }, bad.Message, null),
        TransactionLogFailedException failed => new(StatusCodes.Status503ServiceUnavailable, "The transaction log has failed",
            ReasonText.Truncate(InDoubt(httpContext) + WithCause(failed))!, null),
        TooManyLiveTransactionsException tooMany => new(StatusCodes.Status503ServiceUnavailable,
            tooMany.PerClient ? "Too many live transactions of this client" : "Too many live transactions", tooMany.Message, tooMany.RetryAfter),
        CoordinatorUnavailableException unavailable => new(StatusCodes.Status503ServiceUnavailable, "The coordinator is not running", unavailable.Message, null),

        // Cancelled by the coordinator, not by the caller (whose own abort needs no answer): its shutdown cut a completion short.
        OperationCanceledException stopped when !httpContext.RequestAborted.IsCancellationRequested =>
            new(StatusCodes.Status503ServiceUnavailable, "Cancelled by the coordinator", ReasonText.Truncate(stopped.Message)!, null),
        _ => null,
    };

    // A commit whose decision could not be forced: the caller must learn that the transaction is in doubt, not failed.
    private static string InDoubt(HttpContext httpContext)
    {
        // The exception handler runs with the route values cleared: the id is read from /transactions/{id}/...
        var segments = (httpContext.Request.Path.Value ?? string.Empty).Split('/', StringSplitOptions.RemoveEmptyEntries);
        if (segments is ["transactions", var id, ..] && GlobalTransactionId.TryParse(Uri.UnescapeDataString(id), out var transactionId)
            && httpContext.RequestServices.GetService<TransactionRegistry>() is { } registry
            && registry.Coordinator.GetStatus(transactionId).State == TransactionState.InDoubt)
        {
            return $"Transaction {transactionId} is in doubt: its commit decision may or may not be on disk, and its branches stay prepared until the coordinator restarts and recovery reads the log. ";
        }

        return string.Empty;
    }

    // The log's own message says what it means for the transaction; the innermost error says what happened (a full disk).
    private static string WithCause(Exception exception)
    {
        var cause = exception;
        while (cause.InnerException is { } inner)
        {
            cause = inner;
        }

        return ReferenceEquals(cause, exception) || exception.Message.Contains(cause.Message, StringComparison.Ordinal)
            ? exception.Message
            : $"{exception.Message} Cause: {cause.Message}";
    }

    private sealed record Problem(int Status, string Title, string Detail, TimeSpan? RetryAfter);
}
