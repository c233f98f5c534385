using System.Net;
using System.Net.Http.Json;
using TwoPC.Client;

namespace TwoPC.Samples.Tests;

/// <summary>The failure paths of the payment and order services, against the real coordinator and PostgreSQL.</summary>
[Collection(SampleServicesCollection.Name)]
public sealed class SampleServiceTests(SampleServicesFixture services)
{
    [Fact]
    public async Task A_debit_beyond_the_balance_votes_no_at_prepare_and_changes_nothing()
    {
        var balance = await services.BalanceAsync("bob");
        await using var tx = await services.Coordinator.BeginAsync(TimeSpan.FromSeconds(30));

        using var response = await services.Http.PostInTransactionAsync(new Uri(services.PaymentsUrl, "payments").AbsoluteUri, new { orderId = "t-funds", customerId = "bob", amount = balance + 1m }, tx);
        var problem = await response.Content.ReadAsStringAsync();
        var outcome = await tx.CommitAsync();

        // The UPDATE succeeded; the deferred trigger refused at PREPARE TRANSACTION, so the branch voted No.
        Assert.Equal(HttpStatusCode.Conflict, response.StatusCode);
        Assert.Contains("insufficient funds", problem, StringComparison.Ordinal);
        Assert.Equal(OutcomeKindDto.RolledBack, outcome.Kind);
        Assert.Equal(balance, await services.BalanceAsync("bob"));
        Assert.Equal(0, await services.PreparedAsync());
    }

    [Fact]
    public async Task A_debit_within_the_balance_prepares_and_commits()
    {
        var balance = await services.BalanceAsync("grace");
        await using var tx = await services.Coordinator.BeginAsync(TimeSpan.FromSeconds(30));

        using var response = await services.Http.PostInTransactionAsync(new Uri(services.PaymentsUrl, "payments").AbsoluteUri, new { orderId = "t-ok", customerId = "grace", amount = 10.25m }, tx);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(balance, await services.BalanceAsync("grace")); // prepared, not committed
        var outcome = await tx.CommitAsync();

        Assert.Equal(OutcomeKindDto.Committed, outcome.Kind);
        Assert.Equal(balance - 10.25m, await services.BalanceAsync("grace"));
        Assert.Equal(0, await services.PreparedAsync());
    }

    [Fact]
    public async Task A_debit_without_a_transaction_is_refused_before_any_work()
    {
        var balance = await services.BalanceAsync("alice");

        using var response = await services.Http.PostAsJsonAsync(new Uri(services.PaymentsUrl, "payments"), new { orderId = "t-none", customerId = "alice", amount = 1m });

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal(balance, await services.BalanceAsync("alice"));
    }

    [Fact]
    public async Task A_debit_of_an_unknown_customer_is_404_and_rolls_its_branch_back()
    {
        await using var tx = await services.Coordinator.BeginAsync(TimeSpan.FromSeconds(30));

        using var response = await services.Http.PostInTransactionAsync(new Uri(services.PaymentsUrl, "payments").AbsoluteUri, new { orderId = "t-who", customerId = "nobody", amount = 1m }, tx);
        var outcome = await tx.CommitAsync();

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal(OutcomeKindDto.RolledBack, outcome.Kind);

        // A lone remote branch is prepared like any other (issue 10, item 10), so its refusal shows as a No vote.
        Assert.Contains(outcome.Branches, b => b.ResourceManager == "payments" && b.Vote == BranchVoteDto.No);
    }

    [Fact]
    public async Task A_checkout_out_of_stock_answers_409_and_writes_nothing()
    {
        var (orders, payments) = await services.RowsAsync();
        var lamps = await services.StockAsync("lamp");

        var (status, answer) = await CheckoutAsync("erin", "lamp", lamps + 1, 45m * (lamps + 1));

        Assert.Equal(HttpStatusCode.Conflict, status);
        Assert.Equal("RolledBack", answer.Outcome);
        Assert.StartsWith("out of stock", answer.Reason, StringComparison.Ordinal);
        Assert.Equal(lamps, await services.StockAsync("lamp"));
        Assert.Equal((orders, payments), await services.RowsAsync());
        Assert.Equal(0, await services.PreparedAsync());
    }

    [Fact]
    public async Task A_checkout_with_insufficient_funds_rolls_back_the_prepared_order()
    {
        var (orders, payments) = await services.RowsAsync();
        var lamps = await services.StockAsync("lamp");
        var balance = await services.BalanceAsync("bob");

        var (status, answer) = await CheckoutAsync("bob", "lamp", 1, balance + 20m);

        // The orders branch was prepared (a lamp reserved) before the payment branch voted No: the coordinator rolled it back.
        Assert.Equal(HttpStatusCode.Conflict, status);
        Assert.Equal("RolledBack", answer.Outcome);
        Assert.Contains("insufficient funds", answer.Reason, StringComparison.Ordinal);
        Assert.Equal(lamps, await services.StockAsync("lamp"));
        Assert.Equal(balance, await services.BalanceAsync("bob"));
        Assert.Equal((orders, payments), await services.RowsAsync());
        Assert.Equal(0, await services.PreparedAsync());
    }

    [Fact]
    public async Task A_checkout_whose_event_cannot_be_staged_rolls_back_both_prepared_branches()
    {
        // This coordinator has no RabbitMQ: the orders and payment branches are prepared when staging the event fails.
        var (orders, payments) = await services.RowsAsync();
        var books = await services.StockAsync("book");
        var balance = await services.BalanceAsync("carol");

        var (status, answer) = await CheckoutAsync("carol", "book", 1, 12.50m);

        Assert.Equal(HttpStatusCode.Conflict, status);
        Assert.Equal("RolledBack", answer.Outcome);
        Assert.StartsWith("the OrderPlaced event could not be staged", answer.Reason, StringComparison.Ordinal);
        Assert.Equal(books, await services.StockAsync("book"));
        Assert.Equal(balance, await services.BalanceAsync("carol"));
        Assert.Equal((orders, payments), await services.RowsAsync());
        Assert.Equal(0, await services.PreparedAsync());
    }

    [Theory]
    [InlineData("", "book", 1, 1)]
    [InlineData("alice", "", 1, 1)]
    [InlineData("alice", "book", 0, 1)]
    [InlineData("alice", "book", 1, 0)]
    [InlineData("alice", "book", 1, 0.001)]
    public async Task An_invalid_checkout_is_400(string customerId, string sku, int quantity, double amount)
    {
        var (status, _) = await CheckoutAsync(customerId, sku, quantity, (decimal)amount);

        Assert.Equal(HttpStatusCode.BadRequest, status);
    }

    [Fact]
    public async Task A_checkout_of_an_unknown_sku_answers_409()
    {
        var (status, answer) = await CheckoutAsync("alice", "unicorn", 1, 1m);

        Assert.Equal(HttpStatusCode.Conflict, status);
        Assert.Equal("unknown sku unicorn", answer.Reason);
    }

    private async Task<(HttpStatusCode Status, Answer Answer)> CheckoutAsync(string customerId, string sku, int quantity, decimal amount)
    {
        using var response = await services.Http.PostAsJsonAsync(new Uri(services.OrdersUrl, "checkout"), new { customerId, sku, quantity, amount });
        var answer = response.StatusCode == HttpStatusCode.BadRequest ? new Answer(null, null) : await response.Content.ReadFromJsonAsync<Answer>() ?? new Answer(null, null);
        return (response.StatusCode, answer);
    }

    private sealed record Answer(string? Outcome, string? Reason);
}
