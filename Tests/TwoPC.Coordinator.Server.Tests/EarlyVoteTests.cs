using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using TwoPC.Client;

namespace TwoPC.Coordinator.Server.Tests;

/// <summary>
/// Issue 13, item 3: a participant that prepared reports its Yes vote early (<c>POST /transactions/{id}/branches/{xid}/prepared</c>),
/// authenticated like its registration, so phase 1 sends that branch no prepare callback; the vote counts for the XID it names
/// only, and a participant that does not report (an older one) is asked by callback as before.
/// </summary>
public sealed class EarlyVoteTests(AuthServerFixture server) : IClassFixture<AuthServerFixture>
{
    [Fact]
    public async Task An_early_yes_is_taken_for_its_own_branch_and_phase_1_asks_only_the_participant_that_did_not_report()
    {
        var alpha = server.Client(AuthServerFixture.AlphaKey);
        using var payments = server.Participant("payments", AuthServerFixture.PaymentsKey);
        using var shipping = server.Participant("shipping", AuthServerFixture.ShippingKey);
        var id = (await alpha.BeginAsync(TimeSpan.FromSeconds(60))).Id;
        var xp = await RegisterAsync(payments, id, "payments");
        var xs = await RegisterAsync(shipping, id, "shipping"); // an older participant: it never reports, it answers /prepare

        // The participant's own recovery data rides with the early vote, as it would with its /prepare answer.
        var recoveryData = Convert.ToBase64String("pg-xid-1234"u8);
        using (var report = await payments.PostAsJsonAsync($"transactions/{id}/branches/{xp}/prepared", new { resourceManager = "payments", recoveryData }))
        {
            Assert.True(report.StatusCode == HttpStatusCode.NoContent, $"{report.StatusCode}: {await report.Content.ReadAsStringAsync()}");
        }

        var outcome = await alpha.CommitAsync(id);

        Assert.Equal(OutcomeKindDto.Committed, outcome.Kind);
        var calls = server.Participants.Calls.ToArray();
        Assert.DoesNotContain($"payments prepare {xp}", calls);
        Assert.Contains($"payments commit {xp}", calls);
        Assert.Contains($"shipping prepare {xs}", calls);
        Assert.Contains($"shipping commit {xs}", calls);

        // Logged with the decision and sent back on /commit, exactly like recovery data answered by callback.
        Assert.Equal(recoveryData, server.Participants.CommitRecoveryData[("payments", xp)]);
        Assert.Null(server.Participants.CommitRecoveryData[("shipping", xs)]);

        // Once phase 1 is over, a report changes nothing.
        using (var late = await payments.PostAsJsonAsync($"transactions/{id}/branches/{xp}/prepared", new { resourceManager = "payments" }))
        {
            Assert.True(late.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.Conflict, $"{late.StatusCode}");
        }

        alpha.Http.Dispose();
    }

    [Fact]
    public async Task An_unsigned_forged_or_misdirected_early_vote_is_refused_and_the_branch_is_asked_by_callback()
    {
        var alpha = server.Client(AuthServerFixture.AlphaKey);
        using var payments = server.Participant("payments", AuthServerFixture.PaymentsKey);
        using var shipping = server.Participant("shipping", AuthServerFixture.ShippingKey);
        using var forger = server.Participant("payments", AuthServerFixture.ShippingKey); // payments' name, another key
        var id = (await alpha.BeginAsync(TimeSpan.FromSeconds(60))).Id;
        var other = (await alpha.BeginAsync(TimeSpan.FromSeconds(60))).Id;
        var xp = await RegisterAsync(payments, id, "payments");
        await RegisterAsync(shipping, id, "shipping");
        var path = $"transactions/{id}/branches/{xp}/prepared";
        var body = new { resourceManager = "payments" };

        // Unsigned, or signed under a key that is not payments', it never reaches the endpoint.
        using (var unsigned = await server.Anonymous.PostAsJsonAsync(path, body))
        {
            await AssertProblemAsync(unsigned, HttpStatusCode.Unauthorized);
        }

        using (var forged = await forger.PostAsJsonAsync(path, body))
        {
            await AssertProblemAsync(forged, HttpStatusCode.Unauthorized);
        }

        // Another participant may not vote under payments' name, nor for payments' branch under its own.
        using (var asPayments = await shipping.PostAsJsonAsync(path, body))
        {
            await AssertProblemAsync(asPayments, HttpStatusCode.Forbidden);
        }

        using (var misdirected = await shipping.PostAsJsonAsync(path, new { resourceManager = "shipping" }))
        {
            await AssertProblemAsync(misdirected, HttpStatusCode.NotFound);
        }

        // A client does not vote; and the XID must be a branch of the transaction in the path.
        using (var byClient = await alpha.Http.PostAsJsonAsync(path, body))
        {
            await AssertProblemAsync(byClient, HttpStatusCode.Forbidden);
        }

        using (var wrongTransaction = await payments.PostAsJsonAsync($"transactions/{other}/branches/{xp}/prepared", body))
        {
            await AssertProblemAsync(wrongTransaction, HttpStatusCode.BadRequest);
        }

        using (var badData = await payments.PostAsJsonAsync(path, new { resourceManager = "payments", recoveryData = "not base64!" }))
        {
            await AssertProblemAsync(badData, HttpStatusCode.BadRequest);
        }

        // None of them counted as a vote: phase 1 asks payments by callback.
        Assert.Equal(OutcomeKindDto.Committed, (await alpha.CommitAsync(id)).Kind);
        Assert.Contains($"payments prepare {xp}", server.Participants.Calls);
        await alpha.RollbackAsync(other);
        alpha.Http.Dispose();
    }

    [Fact]
    public async Task A_vote_relayed_with_the_commit_counts_only_when_its_participant_signature_holds_for_that_branch()
    {
        var alpha = server.Client(AuthServerFixture.AlphaKey);
        using var payments = server.Participant("payments", AuthServerFixture.PaymentsKey);
        using var shipping = server.Participant("shipping", AuthServerFixture.ShippingKey);
        var id = (await alpha.BeginAsync(TimeSpan.FromSeconds(60))).Id;
        var other = (await alpha.BeginAsync(TimeSpan.FromSeconds(60))).Id;
        var xp = await RegisterAsync(payments, id, "payments");
        var xs = await RegisterAsync(shipping, id, "shipping");
        var xo = await RegisterAsync(shipping, other, "shipping");
        var recoveryData = Convert.ToBase64String("pg-xid-42"u8);

        var valid = await SignedVoteAsync(id, xp, "payments", AuthServerFixture.PaymentsKey, recoveryData);
        var forged = await SignedVoteAsync(id, xs, "shipping", AuthServerFixture.PaymentsKey, null);          // not shipping's key
        var tampered = (await SignedVoteAsync(id, xs, "shipping", AuthServerFixture.ShippingKey, null))[..^4] + "AAA="; // body changed
        var moved = await SignedVoteAsync(other, xo, "shipping", AuthServerFixture.ShippingKey, null);        // another transaction's
        using (var commit = await alpha.Http.PostAsJsonAsync($"transactions/{id}/commit", new { preparedVotes = new[] { valid, forged, tampered, moved, "garbage" } }))
        {
            Assert.Equal(HttpStatusCode.OK, commit.StatusCode);
            Assert.Equal(OutcomeKindDto.Committed, (await commit.Content.ReadFromJsonAsync<OutcomeDto>(TwoPCJson.Options))!.Kind);
        }

        var calls = server.Participants.Calls.ToArray();
        Assert.DoesNotContain($"payments prepare {xp}", calls);
        Assert.Contains($"shipping prepare {xs}", calls);
        Assert.Equal(recoveryData, server.Participants.CommitRecoveryData[("payments", xp)]);

        // The other transaction's branch was not touched by its vote being relayed elsewhere: it is still asked.
        Assert.Equal(OutcomeKindDto.Committed, (await alpha.CommitAsync(other)).Kind);
        Assert.Contains($"shipping prepare {xo}", server.Participants.Calls);
        alpha.Http.Dispose();
    }

    /// <summary>What the participant SDK answers a branch request with (<see cref="TwoPCHeaders.PreparedVote"/>).</summary>
    private async Task<string> SignedVoteAsync(string id, string xid, string name, string key, string? recoveryData)
    {
        var body = JsonSerializer.SerializeToUtf8Bytes(new { resourceManager = name, recoveryData }, TwoPCJson.Options);
        using var call = new HttpRequestMessage(HttpMethod.Post, new Uri(server.Url, $"transactions/{Uri.EscapeDataString(id)}/branches/{Uri.EscapeDataString(xid)}/prepared")) { Content = new ByteArrayContent(body) };
        await RequestSignature.SignAsync(call, name, key, TimeProvider.System.GetUtcNow(), CancellationToken.None);
        return string.Join(';', call.Headers.GetValues(RequestSignature.KeyIdHeader).Single(), Uri.EscapeDataString(xid),
            call.Headers.GetValues(RequestSignature.TimestampHeader).Single(), call.Headers.GetValues(RequestSignature.SignatureHeader).Single(), Convert.ToBase64String(body));
    }

    private async Task<string> RegisterAsync(HttpClient participant, string id, string name)
    {
        using var response = await participant.PostAsJsonAsync($"transactions/{id}/branches", new { resourceManager = name, callbackUrl = server.Participants.CallbackUrl(name) });
        Assert.True(response.StatusCode == HttpStatusCode.Created, $"{response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        return (await response.Content.ReadFromJsonAsync<RegisterBranchResponse>(TwoPCJson.Options))!.Xid;
    }

    private static async Task AssertProblemAsync(HttpResponseMessage response, HttpStatusCode status)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(status == response.StatusCode, $"expected {(int)status}, got {(int)response.StatusCode}: {text}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal((int)status, JsonDocument.Parse(text).RootElement.GetProperty("status").GetInt32());
    }
}
