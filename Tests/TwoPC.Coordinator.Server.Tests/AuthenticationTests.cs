using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using TwoPC.Client;

namespace TwoPC.Coordinator.Server.Tests;

/// <summary>
/// Issue 12, item 5: the transaction API is authenticated (API keys, participant signatures, JWT bearer) and a
/// caller acts only within its rights: a client on the transactions it began, a participant under its own name.
/// </summary>
public sealed class AuthenticationTests(AuthServerFixture server) : IClassFixture<AuthServerFixture>
{
    [Fact]
    public async Task Item05_Without_credentials_the_transaction_api_answers_401_problem()
    {
        using var alpha = server.Client(AuthServerFixture.AlphaKey).Http;
        var id = (await new TwoPCClient(alpha).BeginAsync(TimeSpan.FromSeconds(30))).Id;

        using (var begin = await server.Anonymous.PostAsJsonAsync("transactions", new { timeoutSeconds = 30 }))
        {
            await AssertProblemAsync(begin, HttpStatusCode.Unauthorized);
        }

        foreach (var (method, path) in new[] { ("GET", $"transactions/{id}"), ("POST", $"transactions/{id}/commit"), ("POST", $"transactions/{id}/rollback"), ("GET", "info") })
        {
            using var request = new HttpRequestMessage(new HttpMethod(method), path);
            using var response = await server.Anonymous.SendAsync(request);
            await AssertProblemAsync(response, HttpStatusCode.Unauthorized);
        }

        using (var register = await server.Anonymous.PostAsJsonAsync($"transactions/{id}/branches", new { resourceManager = "payments", callbackUrl = server.Participants.CallbackUrl("payments") }))
        {
            await AssertProblemAsync(register, HttpStatusCode.Unauthorized);
        }

        // The anonymous calls changed nothing: alpha's transaction is still active, with no branch.
        var status = await new TwoPCClient(alpha).GetStatusAsync(id);
        Assert.Equal(TransactionStateDto.Active, status.State);
        Assert.Empty(status.Branches!);

        // Health and the OpenAPI document stay anonymous, and health shows no secret.
        using var health = await server.Anonymous.GetAsync("health");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        var healthBody = await health.Content.ReadAsStringAsync();
        foreach (var secret in new[] { AuthServerFixture.AlphaKey, AuthServerFixture.BetaKey, AuthServerFixture.PaymentsKey, AuthServerFixture.AdminKey })
        {
            Assert.DoesNotContain(secret, healthBody, StringComparison.Ordinal);
        }

        using var openApi = await server.Anonymous.GetAsync("openapi/v1.json");
        Assert.Equal(HttpStatusCode.OK, openApi.StatusCode);
    }

    [Fact]
    public async Task Item05_A_wrong_api_key_or_an_unknown_scheme_is_refused_with_401()
    {
        foreach (var authorization in new[] { "ApiKey wrong-key-0123456789abcdefghijklmnopqrstuv", "ApiKey ", "ApiKey " + AuthServerFixture.AlphaKey + "x", "Basic YWxwaGE6eA==", "Bearer not-a-token" })
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "transactions") { Content = JsonContent.Create(new { timeoutSeconds = 30 }) };
            request.Headers.TryAddWithoutValidation("Authorization", authorization);
            using var response = await server.Anonymous.SendAsync(request);
            await AssertProblemAsync(response, HttpStatusCode.Unauthorized);
        }

        // A participant's key is not a client's API key, nor is the admin key (which only reads).
        foreach (var key in new[] { AuthServerFixture.PaymentsKey, AuthServerFixture.AdminKey })
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "transactions") { Content = JsonContent.Create(new { timeoutSeconds = 30 }) };
            request.Headers.TryAddWithoutValidation("Authorization", "ApiKey " + key);
            using var response = await server.Anonymous.SendAsync(request);
            await AssertProblemAsync(response, HttpStatusCode.Unauthorized);
        }
    }

    [Fact]
    public async Task Item05_A_client_cannot_commit_roll_back_read_or_publish_in_another_clients_transaction()
    {
        var alpha = server.Client(AuthServerFixture.AlphaKey);
        using var beta = server.Client(AuthServerFixture.BetaKey).Http;
        using var payments = server.Participant("payments", AuthServerFixture.PaymentsKey);
        var id = (await alpha.BeginAsync(TimeSpan.FromSeconds(60))).Id;
        var xid = await RegisterAsync(payments, id, "payments");

        // What beta gets for alpha's transaction is what it gets for a transaction that does not exist.
        var unknown = id[..(id.LastIndexOf('.') + 1)] + "fffffff";
        using (var notThere = await beta.PostAsync($"transactions/{unknown}/commit", null))
        {
            await AssertProblemAsync(notThere, HttpStatusCode.NotFound);
        }

        foreach (var (method, path, body) in new (string, string, object?)[]
        {
            ("GET", $"transactions/{id}", null),
            ("POST", $"transactions/{id}/rollback", null),
            ("POST", $"transactions/{id}/commit", null),
            ("POST", $"transactions/{id}/messages", new { exchange = "orders", routingKey = "placed", body = new { order = 1 } }),
        })
        {
            using var request = new HttpRequestMessage(new HttpMethod(method), path) { Content = body is null ? null : JsonContent.Create(body) };
            using var response = await beta.SendAsync(request);
            var problem = await AssertProblemAsync(response, HttpStatusCode.NotFound);
            Assert.Equal("Unknown transaction", problem.GetProperty("title").GetString());
            Assert.DoesNotContain("payments", problem.ToString(), StringComparison.Ordinal);
        }

        // A bearer client named like an API-key client is another client too.
        using (var carol = server.Bearer(AuthServerFixture.Token("alpha", AuthServerFixture.JwtSigningKey)))
        using (var commit = await carol.PostAsync($"transactions/{id}/commit", null))
        {
            await AssertProblemAsync(commit, HttpStatusCode.NotFound);
        }

        // Alpha's transaction is untouched: still active, its branch only prepared when alpha commits.
        var status = await alpha.GetStatusAsync(id);
        Assert.Equal(TransactionStateDto.Active, status.State);
        Assert.Equal(xid, Assert.Single(status.Branches!).Xid);
        Assert.False(server.Participants.States.ContainsKey(("payments", xid)));

        var outcome = await alpha.CommitAsync(id);
        Assert.Equal(OutcomeKindDto.Committed, outcome.Kind);
        Assert.Equal("committed", server.Participants.States[("payments", xid)]);

        // Finished, it stays alpha's: beta still sees nothing.
        using var after = await beta.GetAsync($"transactions/{id}");
        await AssertProblemAsync(after, HttpStatusCode.NotFound);
        Assert.Equal(TransactionStateDto.Committed, (await alpha.GetStatusAsync(id)).State);
        alpha.Http.Dispose();
    }

    [Fact]
    public async Task Item05_A_participant_registers_branches_only_under_its_own_name()
    {
        var alpha = server.Client(AuthServerFixture.AlphaKey);
        using var payments = server.Participant("payments", AuthServerFixture.PaymentsKey);
        var id = (await alpha.BeginAsync(TimeSpan.FromSeconds(60))).Id;

        using (var asShipping = await payments.PostAsJsonAsync($"transactions/{id}/branches", new { resourceManager = "shipping", callbackUrl = server.Participants.CallbackUrl("shipping") }))
        {
            await AssertProblemAsync(asShipping, HttpStatusCode.Forbidden);
        }

        // A client registers no branch (it has no participant identity), and a participant begins nothing.
        using (var byClient = await alpha.Http.PostAsJsonAsync($"transactions/{id}/branches", new { resourceManager = "payments", callbackUrl = server.Participants.CallbackUrl("payments") }))
        {
            await AssertProblemAsync(byClient, HttpStatusCode.Forbidden);
        }

        using (var begin = await payments.PostAsJsonAsync("transactions", new { timeoutSeconds = 30 }))
        {
            await AssertProblemAsync(begin, HttpStatusCode.Forbidden);
        }

        Assert.Empty((await alpha.GetStatusAsync(id)).Branches!);

        // Under its own name it may; and it reads the status of any transaction (its recovery asks) and /info.
        var xid = await RegisterAsync(payments, id, "payments");
        var status = await payments.GetFromJsonAsync<TransactionStatusDto>($"transactions/{id}", TwoPCJson.Options);
        Assert.Equal(xid, Assert.Single(status!.Branches!).Xid);
        using var info = await payments.GetAsync("info");
        Assert.Equal(HttpStatusCode.OK, info.StatusCode);

        // But it does not decide: commit is the client's.
        using (var commit = await payments.PostAsync($"transactions/{id}/commit", null))
        {
            await AssertProblemAsync(commit, HttpStatusCode.Forbidden);
        }

        Assert.Equal(TransactionStateDto.Active, (await alpha.GetStatusAsync(id)).State);
        await alpha.RollbackAsync(id);
        alpha.Http.Dispose();
    }

    [Fact]
    public async Task Item05_A_signed_participant_call_replayed_with_another_body_or_path_or_too_late_is_refused()
    {
        var alpha = server.Client(AuthServerFixture.AlphaKey);
        var id = (await alpha.BeginAsync(TimeSpan.FromSeconds(60))).Id;
        var other = (await alpha.BeginAsync(TimeSpan.FromSeconds(60))).Id;
        var now = TimeProvider.System.GetUtcNow();
        var body = JsonSerializer.Serialize(new { resourceManager = "payments", callbackUrl = server.Participants.CallbackUrl("payments") });
        using var raw = new HttpClient();

        // Captured: a valid signed registration in transaction `id`.
        using var captured = await SignedAsync(HttpMethod.Post, $"transactions/{id}/branches", body, "payments", AuthServerFixture.PaymentsKey, now);

        // The same headers with another body (registering shipping's callback URL) ...
        var tampered = body.Replace(server.Participants.CallbackUrl("payments"), server.Participants.CallbackUrl("shipping"), StringComparison.Ordinal);
        using (var response = await raw.SendAsync(CopyWith(captured, captured.RequestUri!, tampered)))
        {
            await AssertProblemAsync(response, HttpStatusCode.Unauthorized);
        }

        // ... or at another path (another transaction) ...
        using (var response = await raw.SendAsync(CopyWith(captured, new Uri(server.Url, $"transactions/{other}/branches"), body)))
        {
            await AssertProblemAsync(response, HttpStatusCode.Unauthorized);
        }

        // ... or claiming to be another participant, are refused.
        using (var asShipping = CopyWith(captured, captured.RequestUri!, body))
        {
            asShipping.Headers.Remove(RequestSignature.KeyIdHeader);
            asShipping.Headers.TryAddWithoutValidation(RequestSignature.KeyIdHeader, "shipping");
            using var response = await raw.SendAsync(asShipping);
            await AssertProblemAsync(response, HttpStatusCode.Unauthorized);
        }

        // Signed too long ago (outside the 5-minute clock-skew window), or under a key nobody configured.
        using (var expired = await SignedAsync(HttpMethod.Post, $"transactions/{id}/branches", body, "payments", AuthServerFixture.PaymentsKey, now.AddMinutes(-10)))
        using (var response = await raw.SendAsync(expired))
        {
            var problem = await AssertProblemAsync(response, HttpStatusCode.Unauthorized);
            Assert.Contains("Expired", problem.GetProperty("detail").GetString(), StringComparison.OrdinalIgnoreCase);
        }

        using (var stranger = await SignedAsync(HttpMethod.Post, $"transactions/{id}/branches", body.Replace("\"payments\"", "\"stranger\"", StringComparison.Ordinal), "stranger", AuthServerFixture.PaymentsKey, now))
        using (var response = await raw.SendAsync(stranger))
        {
            await AssertProblemAsync(response, HttpStatusCode.Unauthorized);
        }

        Assert.Empty((await alpha.GetStatusAsync(id)).Branches!);
        Assert.Empty((await alpha.GetStatusAsync(other)).Branches!);

        // The captured call itself, unchanged, is accepted.
        using (var response = await raw.SendAsync(CopyWith(captured, captured.RequestUri!, body)))
        {
            Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        }

        Assert.Single((await alpha.GetStatusAsync(id)).Branches!);
        await alpha.RollbackAsync(id);
        await alpha.RollbackAsync(other);
        alpha.Http.Dispose();
    }

    [Fact]
    public async Task Item05_A_bearer_token_signed_with_the_configured_key_is_accepted_and_one_signed_otherwise_refused()
    {
        using var carol = server.Bearer(AuthServerFixture.Token("carol", AuthServerFixture.JwtSigningKey));
        var client = new TwoPCClient(carol);
        var tx = await client.BeginAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(TransactionStateDto.Active, (await client.GetStatusAsync(tx.Id)).State);
        Assert.Equal(OutcomeKindDto.Committed, (await client.CommitAsync(tx.Id)).Kind);

        var wrongKey = Encoding.UTF8.GetBytes("another-signing-key-nobody-configured-0123456789abcdefghijklm");
        foreach (var token in new[] { AuthServerFixture.Token("carol", wrongKey), AuthServerFixture.Token("carol", AuthServerFixture.JwtSigningKey, TimeSpan.FromMinutes(-20)) })
        {
            using var mallory = server.Bearer(token);
            using var begin = await mallory.PostAsJsonAsync("transactions", new { timeoutSeconds = 30 });
            await AssertProblemAsync(begin, HttpStatusCode.Unauthorized);
            using var read = await mallory.GetAsync($"transactions/{tx.Id}");
            await AssertProblemAsync(read, HttpStatusCode.Unauthorized);
        }

        // A token's own claims make nobody a participant: a bearer client registers no branch.
        using (var claimsParticipant = server.Bearer(AuthServerFixture.Token("payments", AuthServerFixture.JwtSigningKey)))
        {
            var mine = await new TwoPCClient(claimsParticipant).BeginAsync(TimeSpan.FromSeconds(30));
            using var register = await claimsParticipant.PostAsJsonAsync($"transactions/{mine.Id}/branches", new { resourceManager = "payments", callbackUrl = server.Participants.CallbackUrl("payments") });
            await AssertProblemAsync(register, HttpStatusCode.Forbidden);
            await mine.RollbackAsync();
        }

        // Another subject of the same issuer is another client.
        using var dave = server.Bearer(AuthServerFixture.Token("dave", AuthServerFixture.JwtSigningKey));
        using var daveReads = await dave.GetAsync($"transactions/{tx.Id}");
        await AssertProblemAsync(daveReads, HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task Item05_The_admin_key_reads_any_transaction_but_cannot_act_in_it()
    {
        var alpha = server.Client(AuthServerFixture.AlphaKey);
        var id = (await alpha.BeginAsync(TimeSpan.FromSeconds(30))).Id;
        using var http = new HttpClient { BaseAddress = server.Url };
        var admin = new TwoPCAdminClient(http, AuthServerFixture.AdminKey);
        Assert.Equal(TransactionStateDto.Active, (await admin.GetTransactionAsync(id)).State);

        using var request = new HttpRequestMessage(HttpMethod.Post, $"transactions/{id}/rollback");
        request.Headers.TryAddWithoutValidation(TwoPCAdminClient.ApiKeyHeader, AuthServerFixture.AdminKey);
        using var rollback = await http.SendAsync(request);
        await AssertProblemAsync(rollback, HttpStatusCode.Forbidden);
        Assert.Equal(TransactionStateDto.Active, (await alpha.GetStatusAsync(id)).State);

        var wrong = new TwoPCAdminClient(http, "not-the-admin-key-0123456789abcdefghijkl");
        var refused = await Assert.ThrowsAsync<TwoPCApiException>(() => wrong.GetTransactionAsync(id));
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        await alpha.RollbackAsync(id);
        alpha.Http.Dispose();
    }

    private async Task<string> RegisterAsync(HttpClient participant, string id, string name)
    {
        using var response = await participant.PostAsJsonAsync($"transactions/{id}/branches", new { resourceManager = name, callbackUrl = server.Participants.CallbackUrl(name) });
        Assert.True(response.StatusCode == HttpStatusCode.Created, $"{response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        return (await response.Content.ReadFromJsonAsync<RegisterBranchResponse>(TwoPCJson.Options))!.Xid;
    }

    private async Task<HttpRequestMessage> SignedAsync(HttpMethod method, string path, string body, string keyId, string key, DateTimeOffset at)
    {
        var request = new HttpRequestMessage(method, new Uri(server.Url, path)) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        await RequestSignature.SignAsync(request, keyId, key, at, CancellationToken.None);
        return request;
    }

    /// <summary>A copy of <paramref name="signed"/>'s signature headers on a request to <paramref name="uri"/> with <paramref name="body"/>.</summary>
    private static HttpRequestMessage CopyWith(HttpRequestMessage signed, Uri uri, string body)
    {
        var copy = new HttpRequestMessage(signed.Method, uri) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        foreach (var name in new[] { RequestSignature.KeyIdHeader, RequestSignature.TimestampHeader, RequestSignature.SignatureHeader })
        {
            copy.Headers.TryAddWithoutValidation(name, signed.Headers.GetValues(name));
        }

        return copy;
    }

    private static async Task<JsonElement> AssertProblemAsync(HttpResponseMessage response, HttpStatusCode status)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(status == response.StatusCode, $"expected {(int)status}, got {(int)response.StatusCode}: {text}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = JsonDocument.Parse(text).RootElement;
        Assert.Equal((int)status, problem.GetProperty("status").GetInt32());
        return problem;
    }
}
