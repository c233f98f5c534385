using System.Net.Http.Json;
using System.Text.Json;
using Dapper;
using Npgsql;
using TwoPC.Client;
using TwoPC.Participants;
using TwoPC.Participants.Remote;

namespace TwoPC.Samples.Orders;

/// <summary>
/// A checkout, as one global transaction run by the standalone coordinator:
/// <list type="number">
/// <item>begin at the coordinator;</item>
/// <item>this service's own branch: reserve the stock (a checked UPDATE: out of stock fails it), write the order, PREPARE;</item>
/// <item>the payment service's branch: <c>POST /payments</c> with the transaction id header (it prepares before answering 2xx);</item>
/// <item>stage the <see cref="OrderPlaced"/> event at the coordinator (published only if the transaction commits);</item>
/// <item>commit — or roll back as soon as a step failed.</item>
/// </list>
/// </summary>
internal sealed class CheckoutService(RemoteParticipant participant, IHttpClientFactory httpClients, IConfiguration configuration, ILoggerFactory loggers)
{
    public const string CoordinatorClient = "coordinator";
    public const string PaymentsClient = "payments";

    private readonly ILogger _log = loggers.CreateLogger(Log.Category);
    private readonly TimeSpan _timeout = configuration.GetValue("Orders:TransactionTimeout", TimeSpan.FromSeconds(30));

    public async Task<CheckoutResult> CheckoutAsync(CheckoutRequest request, CancellationToken cancellationToken)
    {
        var orderId = "ord-" + Guid.NewGuid().ToString("N")[..12];
        var coordinator = new TwoPCClient(httpClients.CreateClient(CoordinatorClient));
        CoordinatorTransaction tx;
        try
        {
            tx = await coordinator.BeginAsync(_timeout, cancellationToken);
        }
        catch (Exception ex) when (ex is HttpRequestException or TwoPCApiException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
        {
            _log.Unavailable(orderId, ex.Message);
            return new CheckoutResult(orderId, null, CheckoutOutcomes.Unavailable, "the coordinator is unavailable: " + ex.Message, null);
        }

        // Disposing rolls the transaction back unless it was committed or rolled back explicitly (an exception, a
        // client gone away): nothing stays half done, and the coordinator's deadline would roll it back anyway.
        await using (tx)
        {
            _log.Begun(orderId, request.CustomerId!, request.Quantity, request.Sku!, request.Amount, tx.Id);

            // 1. Our own branch, prepared before anyone else is called.
            var failure = await PlaceOrderAsync(tx, orderId, request, cancellationToken);
            if (failure is not null)
            {
                return await RollBackAsync(tx, orderId, failure);
            }

            // 2. The payment service's branch.
            var payments = httpClients.CreateClient(PaymentsClient);
            try
            {
                using var response = await payments.PostInTransactionAsync("payments", new { orderId, request.CustomerId, request.Amount }, tx, cancellationToken);
                if (!response.IsSuccessStatusCode)
                {
                    return await RollBackAsync(tx, orderId, "payment refused: " + await ReasonAsync(response, cancellationToken));
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
            {
                return await RollBackAsync(tx, orderId, "payment service unreachable: " + ex.Message);
            }

            _log.Paid(orderId);

            // 3. The event: staged at the coordinator, published (with publisher confirms) if and only if everything commits.
            var placed = new OrderPlaced(orderId, request.CustomerId!, request.Sku!, request.Quantity, request.Amount);
            PublishMessageResponse staged;
            try
            {
                staged = await tx.PublishAsync(OrderPlaced.Exchange, OrderPlaced.RoutingKey, placed, OrderPlaced.Type, cancellationToken: cancellationToken);
            }
            catch (Exception ex) when (ex is TwoPCApiException or HttpRequestException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
            {
                return await RollBackAsync(tx, orderId, "the OrderPlaced event could not be staged: " + ex.Message);
            }

            _log.EventStaged(orderId, staged.MessageId);

            // 4. Commit: every branch is asked for its vote, the decision is logged, then every branch commits.
            // Not cancelled with the request: once asked, the coordinator decides whatever the client does.
            OutcomeDto outcome;
            try
            {
                outcome = await tx.CommitAsync(CancellationToken.None);
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or TwoPCApiException)
            {
                _log.CommitUnknown(ex, orderId, tx.Id);
                return new CheckoutResult(orderId, tx.Id, CheckoutOutcomes.Unknown, $"the coordinator did not answer the commit ({ex.Message}); its log decides: GET /transactions/{tx.Id} there", staged.MessageId);
            }

            // The sample's answer carries the coordinator's word for the outcome (CheckoutOutcomes names the same text).
            var kind = outcome.Kind.ToString();
            switch (outcome.Kind)
            {
                case OutcomeKindDto.Committed:
                    _log.Committed(orderId, tx.Id);
                    return new CheckoutResult(orderId, tx.Id, kind, null, staged.MessageId);
                case OutcomeKindDto.RolledBack:
                    _log.RolledBack(orderId, tx.Id, outcome.Reason ?? "rolled back");
                    return new CheckoutResult(orderId, tx.Id, kind, outcome.Reason, null);
                default:
                    _log.Heuristic(orderId, tx.Id, kind, outcome.Reason);
                    return new CheckoutResult(orderId, tx.Id, kind, outcome.Reason, staged.MessageId);
            }
        }
    }

    /// <returns>Why the order cannot be placed, or <see langword="null"/> when the branch is prepared.</returns>
    private async Task<string?> PlaceOrderAsync(CoordinatorTransaction tx, string orderId, CheckoutRequest request, CancellationToken cancellationToken)
    {
        RemoteBranch branch;
        try
        {
            branch = await participant.JoinAsync(tx.Id, cancellationToken);
        }
        catch (RemoteParticipantException ex)
        {
            return "the orders branch could not join: " + ex.Message;
        }

        // Leaving this block without a prepared branch rolls the work back (the branch then votes No).
        await using (branch)
        {
            try
            {
                return await ReserveAndPrepareAsync(branch, orderId, request, cancellationToken);
            }
            catch (NpgsqlException ex) when (!cancellationToken.IsCancellationRequested)
            {
                // A lock or statement timeout (bounded by the transaction's deadline), a lost connection...
                return "the orders branch failed: " + (ex is PostgresException pg ? $"{pg.SqlState}: {pg.MessageText}" : ex.Message);
            }
            catch (InvalidOperationException ex)
            {
                // PrepareAsync: the coordinator rolled the branch back already (its deadline passed).
                return "the orders branch failed: " + ex.Message;
            }
        }
    }

    private async Task<string?> ReserveAndPrepareAsync(RemoteBranch branch, string orderId, CheckoutRequest request, CancellationToken cancellationToken)
    {
        var reserved = await branch.Connection.ExecuteAsync(new CommandDefinition(
            "UPDATE stock SET quantity = quantity - @Quantity WHERE sku = @Sku AND quantity >= @Quantity", request, branch.Transaction, cancellationToken: cancellationToken));
        if (reserved == 0)
        {
            var left = await branch.Connection.ExecuteScalarAsync<int?>(new CommandDefinition(
                "SELECT quantity FROM stock WHERE sku = @Sku", request, branch.Transaction, cancellationToken: cancellationToken));
            return left is null ? $"unknown sku {request.Sku}" : $"out of stock: {request.Quantity} x {request.Sku} wanted, {left} left";
        }

        await branch.Connection.ExecuteAsync(new CommandDefinition(
            "INSERT INTO orders (order_id, customer_id, sku, quantity, amount) VALUES (@orderId, @CustomerId, @Sku, @Quantity, @Amount)",
            new { orderId, request.CustomerId, request.Sku, request.Quantity, request.Amount },
            branch.Transaction,
            cancellationToken: cancellationToken));
        _log.Reserved(orderId, branch.Xid);

        // PREPARE TRANSACTION: from here the order and the stock reservation survive any crash until the
        // coordinator's decision (its row locks too). Not cancelled with the request (half a prepare helps nobody).
        var vote = await branch.PrepareAsync(CancellationToken.None);
        _log.Prepared(orderId, vote.Kind);
        return vote.Kind == VoteKind.No ? "the orders branch voted no: " + vote.Reason : null;
    }

    private async Task<CheckoutResult> RollBackAsync(CoordinatorTransaction tx, string orderId, string reason)
    {
        try
        {
            await tx.RollbackAsync(CancellationToken.None);
        }
        catch (Exception ex) when (ex is HttpRequestException or TwoPCApiException or TaskCanceledException)
        {
            // The coordinator rolls it back at its deadline (presumed abort); nothing was decided.
        }

        _log.RolledBack(orderId, tx.Id, reason);
        return new CheckoutResult(orderId, tx.Id, CheckoutOutcomes.RolledBack, reason, null);
    }

    private static async Task<string> ReasonAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        try
        {
            var problem = await response.Content.ReadFromJsonAsync<Problem>(cancellationToken);
            if (problem?.Detail is { Length: > 0 } detail)
            {
                return detail;
            }

            if (problem?.Title is { Length: > 0 } title)
            {
                return title;
            }
        }
        catch (JsonException)
        {
            // Not problem details: the status says enough.
        }

        return $"HTTP {(int)response.StatusCode}";
    }

    private sealed record Problem(string? Title, string? Detail);
}

/// <summary>Body of <c>POST /checkout</c>.</summary>
public sealed record CheckoutRequest(string? CustomerId, string? Sku, int Quantity, decimal Amount);

/// <summary>
/// The answer of <c>POST /checkout</c>: 200 <c>Committed</c>; 409 <c>RolledBack</c> with the reason; 502 <c>Unknown</c>
/// (the coordinator vanished during the commit: its log decides); 503 <c>Unavailable</c>; 500 a heuristic outcome.
/// </summary>
/// <param name="OrderId">The new order's id.</param>
/// <param name="TransactionId">The global transaction.</param>
/// <param name="Outcome">Committed, RolledBack, Unknown, Unavailable or Heuristic*.</param>
/// <param name="Reason">Why it did not commit.</param>
/// <param name="MessageId">The OrderPlaced message's id (what consumers deduplicate on), when it was staged.</param>
public sealed record CheckoutResult(string OrderId, string? TransactionId, string Outcome, string? Reason, string? MessageId);

/// <summary>The outcome names of <see cref="CheckoutResult.Outcome"/>.</summary>
public static class CheckoutOutcomes
{
    /// <summary>Every branch committed and the event was published.</summary>
    public const string Committed = "Committed";

    /// <summary>Nothing happened anywhere.</summary>
    public const string RolledBack = "RolledBack";

    /// <summary>The coordinator did not answer the commit; its log decides.</summary>
    public const string Unknown = "Unknown";

    /// <summary>No transaction could be begun.</summary>
    public const string Unavailable = "Unavailable";
}
