using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using TwoPC.Durability;
using TwoPC.Participants;
using TwoPC.Protocol;
using TwoPC.Recovery;
using TwoPC.Transactions;

namespace TwoPC.Coordinator.Server.Tests;

/// <summary>Issue 12 items 9 and 10 at the seams a real process cannot reach yet: the per-client limit (owners come with "auth"), the one truncation rule, the options' validation.</summary>
public sealed class LimitsUnitTests
{
    [Fact]
    public void Item10_every_stored_reason_is_cut_to_1_KiB_by_one_rule()
    {
        var huge = "cause: " + new string('r', 100_000);
        var id = GlobalTransactionId.Parse("unit.1.1");
        var xid = Xid.ForBranch(id, 1);

        Assert.True(Vote.No(huge).Reason!.Length <= ReasonText.MaxLength + 40);
        Assert.True(new TransactionOutcome(id, OutcomeKind.RolledBack, huge, []).Reason!.Length <= ReasonText.MaxLength + 40);
        Assert.True((new TransactionOutcome(id, OutcomeKind.RolledBack, "short", []) with { Reason = huge }).Reason!.Length <= ReasonText.MaxLength + 40);
        Assert.True(new HeuristicRecord(id, DateTimeOffset.UnixEpoch, OutcomeKind.HeuristicMixed, huge, []).Reason.Length <= ReasonText.MaxLength + 40);
        Assert.True(new InDoubtReport("rm", xid, InDoubtResolution.Failed, TimeSpan.Zero, huge).Detail!.Length <= ReasonText.MaxLength + 40);
        Assert.True(new ForcedBranchResult(ForcedAction.Commit, "rm", xid, ForcedBranchStatus.Failed, null, huge).Message.Length <= ReasonText.MaxLength + 40);

        var cut = ReasonText.Truncate(huge)!;
        Assert.StartsWith("cause: rrr", cut, StringComparison.Ordinal);
        Assert.EndsWith($"(truncated, {huge.Length} characters)", cut, StringComparison.Ordinal);

        // Short reasons are kept as they are; a cut never splits a surrogate pair.
        Assert.Equal("short", ReasonText.Truncate("short"));
        Assert.Null(ReasonText.Truncate(null));
        var emoji = new string('a', ReasonText.MaxLength - 1) + "😀" + "tail";
        var emojiCut = ReasonText.Truncate(emoji)!;
        Assert.False(char.IsHighSurrogate(emojiCut[ReasonText.MaxLength - 2]) && !char.IsLowSurrogate(emojiCut[ReasonText.MaxLength - 1]));
        Assert.Equal(new string('a', ReasonText.MaxLength - 1) + "…", emojiCut[..ReasonText.MaxLength]);
    }

    [Fact]
    public async Task Item09_one_client_cannot_take_every_live_slot()
    {
        var log = Directory.CreateTempSubdirectory("twopc-owner-");
        await using var app = CoordinatorServer.BuildApp([
            "--Urls=http://127.0.0.1:0",
            "--TwoPC:NodeId=owner-test",
            $"--TwoPC:LogDirectory={log.FullName}",
            "--Coordinator:Limits:MaxLiveTransactions=5",
            "--Coordinator:Limits:MaxLiveTransactionsPerClient=3",
            "--Logging:LogLevel:Default=Warning",
        ]);
        await app.StartAsync();
        try
        {
            var registry = app.Services.GetRequiredService<TransactionRegistry>();
            var a = Enumerable.Range(0, 3).Select(_ => registry.Begin(TimeSpan.FromMinutes(5), "client-a")).ToList();
            var perClient = Assert.Throws<TooManyLiveTransactionsException>(() => registry.Begin(TimeSpan.FromMinutes(5), "client-a"));
            Assert.True(perClient.PerClient);

            // Another client still gets the slots left for all, then the limit for all refuses it too.
            registry.Begin(TimeSpan.FromMinutes(5), "client-b");
            registry.Begin(TimeSpan.FromMinutes(5), "client-b");
            var all = Assert.Throws<TooManyLiveTransactionsException>(() => registry.Begin(TimeSpan.FromMinutes(5), "client-b"));
            Assert.False(all.PerClient);

            // An ended transaction gives its slot back to its owner.
            await a[0].RollbackAsync();
            registry.Forget(a[0].Id);
            registry.Begin(TimeSpan.FromMinutes(5), "client-a");
            Assert.Equal(5, app.Services.GetRequiredService<LiveTransactionLimiter>().Held);
        }
        finally
        {
            await app.StopAsync();
            log.Delete(recursive: true);
        }
    }

    [Theory]
    [InlineData("MaxConcurrentConnections", "0")]
    [InlineData("MaxRequestBodySize", "10")]
    [InlineData("MaxBranchesPerTransaction", "0")]
    [InlineData("MaxLiveTransactions", "-1")]
    [InlineData("MinRequestBodyDataRateGracePeriod", "00:00:00.500")]
    public async Task A_limit_cannot_be_switched_off_and_a_bad_value_fails_the_start_naming_it(string setting, string value)
    {
        var log = Directory.CreateTempSubdirectory("twopc-options-");
        try
        {
            // Refused when the API is mapped (it reads the body limits) or at the latest when the host starts.
            var error = await Assert.ThrowsAsync<OptionsValidationException>(async () =>
            {
                await using var app = CoordinatorServer.BuildApp([
                    "--Urls=http://127.0.0.1:0",
                    "--TwoPC:NodeId=options-test",
                    $"--TwoPC:LogDirectory={log.FullName}",
                    $"--Coordinator:Limits:{setting}={value}",
                    "--Logging:LogLevel:Default=None",
                ]);
                await app.StartAsync();
            });
            Assert.Contains($"Coordinator:Limits:{setting}", error.Message, StringComparison.Ordinal);
        }
        finally
        {
            log.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task Item11_every_API_endpoint_has_the_small_body_limit_and_messages_their_own()
    {
        var server = new ServerFixture();
        await server.InitializeAsync();
        try
        {
            var endpoints = server.Services.GetRequiredService<Microsoft.AspNetCore.Routing.EndpointDataSource>().Endpoints
                .OfType<Microsoft.AspNetCore.Routing.RouteEndpoint>()
                .Where(e => e.RoutePattern.RawText?.StartsWith("/transactions", StringComparison.Ordinal) == true || e.RoutePattern.RawText?.StartsWith("/admin", StringComparison.Ordinal) == true)
                .ToList();
            Assert.NotEmpty(endpoints);
            foreach (var endpoint in endpoints)
            {
                var limit = endpoint.Metadata.GetMetadata<Microsoft.AspNetCore.Http.Metadata.IRequestSizeLimitMetadata>()?.MaxRequestBodySize;
                var expected = endpoint.RoutePattern.RawText!.EndsWith("/messages", StringComparison.Ordinal) ? 2 * 1024 * 1024 : 64 * 1024;
                Assert.True(limit == expected, $"{endpoint.RoutePattern.RawText}: body limit {limit}, expected {expected}");
            }
        }
        finally
        {
            await server.DisposeAsync();
        }
    }

    [Fact]
    public async Task Item12_health_is_json_with_each_checks_status_description_and_data()
    {
        var server = new ServerFixture();
        await server.InitializeAsync();
        try
        {
            using var health = await server.Client.GetAsync("/health");
            Assert.Equal(HttpStatusCode.OK, health.StatusCode);
            Assert.Equal("application/json", health.Content.Headers.ContentType?.MediaType);
            var report = await health.Content.ReadFromJsonAsync<JsonElement>();
            Assert.Equal("Healthy", report.GetProperty("status").GetString());
            var check = report.GetProperty("checks").GetProperty("twopc");
            Assert.Equal("Healthy", check.GetProperty("status").GetString());
            Assert.False(string.IsNullOrEmpty(check.GetProperty("description").GetString()));
            Assert.True(check.GetProperty("data").GetProperty("log_writable").GetBoolean());
            Assert.True(check.GetProperty("data").GetProperty("started").GetBoolean());
        }
        finally
        {
            await server.DisposeAsync();
        }
    }
}
