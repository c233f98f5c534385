using System.Collections.Concurrent;
using System.Text.Json;
using RabbitMQ.Client;
using TwoPC.Client;
using TwoPC.Hosting;
using TwoPC.Participants.RabbitMq;
using TwoPC.Protocol;
using TwoPC.Transactions;

namespace TwoPC.Coordinator.Server;

/// <summary>
/// Messages published when a transaction commits: with <c>Coordinator:RabbitMq:Uri</c> set, the coordinator
/// hosts the RabbitMQ participant, and <c>POST /transactions/{id}/messages</c> stages a message on the
/// transaction's publishing branch. The messages travel inside the forced commit decision and are published
/// with publisher confirms after it (and again after a crash, under the same message ids); never on rollback.
/// </summary>
public static class Messaging
{
    /// <summary>The default name of the coordinator's RabbitMQ resource manager.</summary>
    public const string DefaultResourceManagerName = "rabbitmq";

    /// <summary>The largest message body accepted, in bytes.</summary>
    public const int MaxBodyBytes = 1024 * 1024;

    internal static void AddMessaging(this TwoPhaseCommitBuilder builder, IConfiguration configuration)
    {
        var section = configuration.GetSection("Coordinator:RabbitMq");
        if (section["Uri"] is not { Length: > 0 } uri)
        {
            return;
        }

        var name = section["Name"] is { Length: > 0 } n ? n : DefaultResourceManagerName;
        builder.AddResourceManager((sp, ct) => RabbitMqResourceManager.CreateAsync(
            name,
            new ConnectionFactory { Uri = new Uri(uri) },
            loggerFactory: sp.GetRequiredService<ILoggerFactory>(),
            meterFactory: sp.GetService<System.Diagnostics.Metrics.IMeterFactory>(),
            cancellationToken: ct));
        builder.Services.AddSingleton<MessageStaging>();
    }

    internal static void MapMessaging(RouteGroupBuilder transactions) =>
        transactions.MapPost("/{id}/messages", PublishAsync).Accepts<PublishMessageRequest>("application/json")
            .Produces<PublishMessageResponse>(StatusCodes.Status202Accepted)
            .ProducesProblem(StatusCodes.Status400BadRequest).ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status409Conflict);

    private static async Task<IResult> PublishAsync(string id, HttpRequest request, TransactionRegistry registry)
    {
        if (!GlobalTransactionId.TryParse(id, out var txId))
        {
            return Problem(StatusCodes.Status400BadRequest, "Bad request", $"{TransactionIdFormatException.Sanitize(id)} is not a transaction id.");
        }

        if (request.HttpContext.RequestServices.GetService<MessageStaging>() is not { } staging)
        {
            return Problem(StatusCodes.Status404NotFound, "Messaging is not configured", "Set Coordinator:RabbitMq:Uri to let transactions publish messages.");
        }

        if (!request.HasJsonContentType())
        {
            return Problem(StatusCodes.Status415UnsupportedMediaType, "Unsupported media type", "Send application/json.");
        }

        PublishMessageRequest? body;
        try
        {
            body = await request.ReadFromJsonAsync<PublishMessageRequest>(TwoPCJson.Options, request.HttpContext.RequestAborted);
        }
        catch (JsonException)
        {
            return Problem(StatusCodes.Status400BadRequest, "Bad request", "The body is not valid JSON for this request.");
        }

        if (Validate(body) is { } error)
        {
            return Problem(StatusCodes.Status400BadRequest, "Bad request", error);
        }

        var bytes = JsonSerializer.SerializeToUtf8Bytes(body!.Body!.Value);
        if (bytes.Length > MaxBodyBytes)
        {
            return Problem(StatusCodes.Status400BadRequest, "Bad request", $"body is {bytes.Length} bytes; at most {MaxBodyBytes} are accepted.");
        }

        if (!registry.TryGet(txId, out var tx))
        {
            return registry.Coordinator.GetStatus(txId).State == TransactionState.Unknown
                ? Problem(StatusCodes.Status404NotFound, "Unknown transaction", $"The coordinator has no record of {txId}.")
                : Problem(StatusCodes.Status409Conflict, "Transaction not active", $"Transaction {txId} is no longer active; messages can only be added while it is.");
        }

        try
        {
            var (xid, index) = staging.Stage(tx, new OutgoingMessage(body.Exchange!, body.RoutingKey ?? string.Empty, bytes, body.Headers, "application/json", body.Type));
            return Results.Accepted($"/transactions/{txId}", new PublishMessageResponse(xid.ToString(), RabbitMqResourceManager.MessageId(xid, index)));
        }
        catch (InvalidOperationException)
        {
            return Problem(StatusCodes.Status409Conflict, "Transaction not active", $"Transaction {txId} is completing; messages can only be added while it is active.");
        }
    }

    private static string? Validate(PublishMessageRequest? body)
    {
        if (body is null)
        {
            return "A JSON body is required.";
        }

        if (string.IsNullOrEmpty(body.Exchange) || body.Exchange.Length > 255 || body.Exchange.Any(char.IsControl))
        {
            return "exchange must be 1-255 printable characters (the default exchange cannot be used: declare one).";
        }

        if (body.RoutingKey is { Length: > 255 } || (body.RoutingKey?.Any(char.IsControl) ?? false))
        {
            return "routingKey must be at most 255 printable characters.";
        }

        if (body.Body is not { ValueKind: not JsonValueKind.Undefined })
        {
            return "body is required (any JSON value).";
        }

        if (body.Type is { Length: > 255 })
        {
            return "type must be at most 255 characters.";
        }

        if (body.Headers is { Count: > 64 } || (body.Headers?.Any(h => h.Key.Length is 0 or > 255 || h.Key.StartsWith("x-twopc", StringComparison.OrdinalIgnoreCase) || h.Value is null || h.Value.Length > 4096) ?? false))
        {
            return "headers: at most 64, names 1-255 characters not starting with x-twopc, values at most 4096 characters.";
        }

        return null;
    }

    private static IResult Problem(int status, string title, string detail) => Results.Problem(statusCode: status, title: title, detail: detail);
}

/// <summary>The publishing branches of the transactions that staged messages through the API.</summary>
internal sealed class MessageStaging(TransactionCoordinator coordinator)
{
    private readonly ConcurrentDictionary<GlobalTransactionId, RabbitMqBranch> _branches = new();
    private long _lastPrune;

    private RabbitMqResourceManager ResourceManager =>
        coordinator.ResourceManagers.OfType<RabbitMqResourceManager>().FirstOrDefault()
        ?? throw new InvalidOperationException("The RabbitMQ resource manager is not registered yet.");

    /// <summary>Stages <paramref name="message"/> on the transaction's publishing branch (enlisted on first use).</summary>
    /// <exception cref="InvalidOperationException">The transaction is no longer active.</exception>
    public (Xid Xid, int Index) Stage(GlobalTransaction transaction, OutgoingMessage message)
    {
        Prune();
        var branch = _branches.GetOrAdd(transaction.Id, static (_, state) => state.rm.Enlist(state.transaction), (rm: ResourceManager, transaction));
        lock (branch)
        {
            branch.Publish(message);
            return (branch.Xid, branch.Staged.Count - 1);
        }
    }

    // Branches of finished transactions are dropped now and then.
    private void Prune()
    {
        var now = Environment.TickCount64;
        var last = Interlocked.Read(ref _lastPrune);
        if (now - last < 10_000 || Interlocked.CompareExchange(ref _lastPrune, now, last) != last)
        {
            return;
        }

        foreach (var id in _branches.Keys)
        {
            if (coordinator.GetStatus(id).State is not (TransactionState.Active or TransactionState.Preparing))
            {
                _branches.TryRemove(id, out _);
            }
        }
    }
}
