using System.Runtime.CompilerServices;
using System.Text;
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

    internal static RouteHandlerBuilder MapMessaging(RouteGroupBuilder transactions) =>
        transactions.MapPost("/{id}/messages", PublishAsync).Accepts<PublishMessageRequest>("application/json")
            .Produces<PublishMessageResponse>(StatusCodes.Status202Accepted)
            .ProducesProblem(StatusCodes.Status400BadRequest).ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status409Conflict);

    private static async Task<IResult> PublishAsync(string id, HttpRequest request, TransactionRegistry registry)
    {
        if (!TwoPCApiEndpoints.TryParseId(id, out var txId, out var error))
        {
            return error;
        }

        if (request.HttpContext.RequestServices.GetService<MessageStaging>() is not { } staging)
        {
            return Results.Problem(statusCode: StatusCodes.Status404NotFound, title: "Messaging is not configured", detail: "Set Coordinator:RabbitMq:Uri to let transactions publish messages.");
        }

        var (body, bodyError) = await TwoPCApiEndpoints.ReadBodyAsync<PublishMessageRequest>(request, optional: false);
        if ((bodyError ?? (Validate(body) is { } invalid ? TwoPCApiEndpoints.BadRequest(invalid) : null)) is { } rejected)
        {
            return rejected;
        }

        var bytes = JsonSerializer.SerializeToUtf8Bytes(body!.Body!.Value);
        if (bytes.Length > MaxBodyBytes)
        {
            return TwoPCApiEndpoints.BadRequest($"body is {bytes.Length} bytes; at most {MaxBodyBytes} are accepted.");
        }

        if (!registry.TryGet(txId, out var tx))
        {
            return TwoPCApiEndpoints.NotOpen(registry, txId);
        }

        var message = new OutgoingMessage(body.Exchange!, body.RoutingKey ?? string.Empty, bytes, body.Headers, "application/json", body.Type);
        if (message.FindProblem() is { } problem)
        {
            return TwoPCApiEndpoints.BadRequest($"the message cannot be published: {problem}.");
        }

        try
        {
            var (xid, index) = staging.Stage(tx, message);
            return Results.Accepted($"/transactions/{txId}", new PublishMessageResponse(xid.ToString(), RabbitMqResourceManager.MessageId(xid, index)));
        }
        catch (InvalidOperationException)
        {
            return Results.Problem(statusCode: StatusCodes.Status409Conflict, title: "Transaction not active", detail: $"Transaction {txId} is completing; messages can only be added while it is active.");
        }
    }

    private static string? Validate(PublishMessageRequest? body)
    {
        if (body is null)
        {
            return "A JSON body is required.";
        }

        // AMQP short strings are limited in bytes of UTF-8, not characters: 200 × "é" is 400 bytes, which the
        // client library could never encode. Refuse it here, before it can reach a commit decision.
        if (string.IsNullOrEmpty(body.Exchange) || !FitsShortString(body.Exchange) || body.Exchange.Any(char.IsControl))
        {
            return $"exchange must be 1-{OutgoingMessage.MaxShortStringBytes} bytes of UTF-8, printable characters (the default exchange cannot be used: declare one).";
        }

        if ((body.RoutingKey is { } routingKey && !FitsShortString(routingKey)) || (body.RoutingKey?.Any(char.IsControl) ?? false))
        {
            return $"routingKey must be at most {OutgoingMessage.MaxShortStringBytes} bytes of UTF-8, printable characters.";
        }

        if (body.Body is not { ValueKind: not JsonValueKind.Undefined })
        {
            return "body is required (any JSON value).";
        }

        if (body.Type is { } type && !FitsShortString(type))
        {
            return $"type must be at most {OutgoingMessage.MaxShortStringBytes} bytes of UTF-8.";
        }

        if (body.Headers is { Count: > 64 } || (body.Headers?.Any(h => h.Key.Length == 0 || !FitsShortString(h.Key) || h.Key.StartsWith("x-twopc", StringComparison.OrdinalIgnoreCase) || h.Value is null || h.Value.Length > 4096) ?? false))
        {
            return $"headers: at most 64, names 1-{OutgoingMessage.MaxShortStringBytes} bytes of UTF-8 not starting with x-twopc, values at most 4096 characters.";
        }

        return null;
    }

    private static bool FitsShortString(string value) => Encoding.UTF8.GetByteCount(value) <= OutgoingMessage.MaxShortStringBytes;

}

/// <summary>
/// The publishing branches of the transactions that staged messages through the API. A branch lives as long as
/// its <see cref="GlobalTransaction"/> (the registry drops finished ones), so nothing here needs pruning.
/// </summary>
internal sealed class MessageStaging(TransactionCoordinator coordinator)
{
    private readonly ConditionalWeakTable<GlobalTransaction, RabbitMqBranch> _branches = [];

    private RabbitMqResourceManager? _resourceManager;

    // Registered at host start, before the API serves; looked up once.
    private RabbitMqResourceManager ResourceManager => _resourceManager ??=
        coordinator.ResourceManagers.OfType<RabbitMqResourceManager>().FirstOrDefault()
        ?? throw new InvalidOperationException("The RabbitMQ resource manager is not registered yet.");

    /// <summary>Stages <paramref name="message"/> on the transaction's publishing branch (enlisted on first use).</summary>
    /// <exception cref="InvalidOperationException">The transaction is no longer active.</exception>
    public (Xid Xid, int Index) Stage(GlobalTransaction transaction, OutgoingMessage message)
    {
        var branch = _branches.GetValue(transaction, ResourceManager.Enlist);
        lock (branch)
        {
            branch.Publish(message);
            return (branch.Xid, branch.Staged.Count - 1);
        }
    }
}
