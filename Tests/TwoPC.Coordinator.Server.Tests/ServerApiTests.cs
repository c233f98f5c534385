using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace TwoPC.Coordinator.Server.Tests;

public sealed class ServerApiTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    private HttpClient Client => server.Client;

    private async Task<string> BeginAsync()
    {
        using var response = await Client.PostAsJsonAsync("/transactions", new { timeoutSeconds = 30 });
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.True(body.TryGetProperty("deadline", out _));
        return body.GetProperty("id").GetString()!;
    }

    private async Task<string> RegisterAsync(string id, string name)
    {
        using var response = await Client.PostAsJsonAsync($"/transactions/{id}/branches", new { resourceManager = name, callbackUrl = server.Participants.CallbackUrl(name) });
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("xid").GetString()!;
    }

    private static async Task AssertProblemAsync(HttpResponseMessage response, HttpStatusCode status)
    {
        Assert.Equal(status, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal((int)status, problem.GetProperty("status").GetInt32());
        var text = problem.ToString();
        Assert.DoesNotContain(" at TwoPC.", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Two_remote_branches_commit()
    {
        var id = await BeginAsync();
        var xa = await RegisterAsync(id, "happy-a");
        var xb = await RegisterAsync(id, "happy-b");

        using var commit = await Client.PostAsync($"/transactions/{id}/commit", null);
        Assert.Equal(HttpStatusCode.OK, commit.StatusCode);
        var outcome = await commit.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("Committed", outcome.GetProperty("kind").GetString());
        Assert.Equal(2, outcome.GetProperty("branches").GetArrayLength());
        Assert.Equal("committed", server.Participants.States[("happy-a", xa)]);
        Assert.Equal("committed", server.Participants.States[("happy-b", xb)]);

        var status = await Client.GetFromJsonAsync<JsonElement>($"/transactions/{id}");
        Assert.Equal("Committed", status.GetProperty("state").GetString());
        Assert.Equal(id, status.GetProperty("id").GetString());
        var branch = status.GetProperty("outcome").GetProperty("branches")[0];
        Assert.Equal("Yes", branch.GetProperty("vote").GetString());
        Assert.Equal("Committed", branch.GetProperty("outcome").GetString());

        // Idempotent: the same outcome again.
        using var again = await Client.PostAsync($"/transactions/{id}/commit", null);
        Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        Assert.Equal(outcome.ToString(), (await again.Content.ReadFromJsonAsync<JsonElement>()).ToString());

        // No branches after commit.
        using var late = await Client.PostAsJsonAsync($"/transactions/{id}/branches", new { resourceManager = "happy-a", callbackUrl = server.Participants.CallbackUrl("happy-a") });
        await AssertProblemAsync(late, HttpStatusCode.Conflict);
    }

    [Fact]
    public async Task A_participant_failing_prepare_rolls_everything_back()
    {
        server.Participants.FailPrepare["fail-b"] = true;
        var id = await BeginAsync();
        var xa = await RegisterAsync(id, "fail-a");
        var xb = await RegisterAsync(id, "fail-b");

        using var commit = await Client.PostAsync($"/transactions/{id}/commit", null);
        Assert.Equal(HttpStatusCode.OK, commit.StatusCode);
        var outcome = await commit.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("RolledBack", outcome.GetProperty("kind").GetString());
        Assert.Contains("fail-b", outcome.GetProperty("reason").GetString(), StringComparison.Ordinal);
        Assert.Equal("rolledBack", server.Participants.States[("fail-a", xa)]);
        Assert.Equal("rolledBack", server.Participants.States[("fail-b", xb)]);
    }

    [Fact]
    public async Task Rollback_is_idempotent()
    {
        var id = await BeginAsync();
        var xa = await RegisterAsync(id, "rb-a");
        using var first = await Client.PostAsync($"/transactions/{id}/rollback", null);
        using var second = await Client.PostAsync($"/transactions/{id}/rollback", null);
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        Assert.Equal("RolledBack", (await second.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("kind").GetString());
        Assert.Equal("rolledBack", server.Participants.States[("rb-a", xa)]);
    }

    [Fact]
    public async Task Begin_without_a_body_uses_the_default_timeout()
    {
        using var response = await Client.PostAsync("/transactions", null);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
    }

    [Fact]
    public async Task Unknown_transaction_is_404_and_Unknown()
    {
        const string id = "server-test.ff.ffff";
        using var commit = await Client.PostAsync($"/transactions/{id}/commit", null);
        await AssertProblemAsync(commit, HttpStatusCode.NotFound);
        using var rollback = await Client.PostAsync($"/transactions/{id}/rollback", null);
        await AssertProblemAsync(rollback, HttpStatusCode.NotFound);
        using var branch = await Client.PostAsJsonAsync($"/transactions/{id}/branches", new { resourceManager = "x", callbackUrl = server.Participants.CallbackUrl("x") });
        await AssertProblemAsync(branch, HttpStatusCode.NotFound);
        var status = await Client.GetFromJsonAsync<JsonElement>($"/transactions/{id}");
        Assert.Equal("Unknown", status.GetProperty("state").GetString());
    }

    [Theory]
    [InlineData("GET", "")]
    [InlineData("POST", "/commit")]
    [InlineData("POST", "/rollback")]
    public async Task Malformed_id_is_400(string method, string suffix)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), $"/transactions/{Uri.EscapeDataString("'; drop table")}{suffix}");
        using var response = await Client.SendAsync(request);
        await AssertProblemAsync(response, HttpStatusCode.BadRequest);
    }

    [Theory]
    [InlineData("{not json")]
    [InlineData("{\"resourceManager\":\"\",\"callbackUrl\":\"http://127.0.0.1:1/x\"}")]
    [InlineData("{\"resourceManager\":\"x\",\"callbackUrl\":\"file:///etc/passwd\"}")]
    [InlineData("{\"resourceManager\":\"x\",\"callbackUrl\":\"not a url\"}")]
    [InlineData("{\"resourceManager\":\"x\"}")]
    [InlineData("[]")]
    public async Task Malformed_branch_body_is_400(string body)
    {
        var id = await BeginAsync();
        using var content = new StringContent(body, Encoding.UTF8, "application/json");
        using var response = await Client.PostAsync($"/transactions/{id}/branches", content);
        await AssertProblemAsync(response, HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task Item02_a_callback_url_outside_the_allowed_origins_is_403()
    {
        var id = await BeginAsync();
        using var content = new StringContent("{\"resourceManager\":\"x\",\"callbackUrl\":\"http://169.254.169.254/latest\"}", Encoding.UTF8, "application/json");
        using var response = await Client.PostAsync($"/transactions/{id}/branches", content);
        await AssertProblemAsync(response, HttpStatusCode.Forbidden);
    }

    [Theory]
    [InlineData("{not json")]
    [InlineData("{\"timeoutSeconds\":-1}")]
    [InlineData("{\"timeoutSeconds\":\"soon\"}")]
    [InlineData("{\"timeoutSeconds\":1e12}")]
    public async Task Malformed_begin_body_is_400(string body)
    {
        using var content = new StringContent(body, Encoding.UTF8, "application/json");
        using var response = await Client.PostAsync("/transactions", content);
        await AssertProblemAsync(response, HttpStatusCode.BadRequest);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("wrong-key")]
    public async Task Admin_without_the_right_key_is_401_and_changes_nothing(string? key)
    {
        var id = await BeginAsync();
        foreach (var (method, path) in new[] { ("GET", "/admin/heuristics"), ("POST", $"/admin/transactions/{id}/forget"), ("POST", "/admin/recover") })
        {
            using var request = new HttpRequestMessage(new HttpMethod(method), path);
            if (key is not null)
            {
                request.Headers.Add("X-Api-Key", key);
            }

            using var response = await Client.SendAsync(request);
            await AssertProblemAsync(response, HttpStatusCode.Unauthorized);
        }

        var status = await Client.GetFromJsonAsync<JsonElement>($"/transactions/{id}");
        Assert.Equal("Active", status.GetProperty("state").GetString());
    }

    [Fact]
    public async Task Admin_with_the_key_works()
    {
        using var heuristics = new HttpRequestMessage(HttpMethod.Get, "/admin/heuristics");
        heuristics.Headers.Add("X-Api-Key", ServerFixture.ApiKey);
        using var list = await Client.SendAsync(heuristics);
        Assert.Equal(HttpStatusCode.OK, list.StatusCode);
        Assert.Equal(JsonValueKind.Array, (await list.Content.ReadFromJsonAsync<JsonElement>()).ValueKind);

        using var recover = new HttpRequestMessage(HttpMethod.Post, "/admin/recover");
        recover.Headers.Add("X-Api-Key", ServerFixture.ApiKey);
        using var report = await Client.SendAsync(recover);
        Assert.Equal(HttpStatusCode.OK, report.StatusCode);
        Assert.True((await report.Content.ReadFromJsonAsync<JsonElement>()).TryGetProperty("branches", out _));

        using var forget = new HttpRequestMessage(HttpMethod.Post, "/admin/transactions/server-test.1.1/forget");
        forget.Headers.Add("X-Api-Key", ServerFixture.ApiKey);
        using var none = await Client.SendAsync(forget);
        await AssertProblemAsync(none, HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task OpenApi_and_health_are_served()
    {
        using var openApi = await Client.GetAsync("/openapi/v1.json");
        Assert.Equal(HttpStatusCode.OK, openApi.StatusCode);
        var document = await openApi.Content.ReadFromJsonAsync<JsonElement>();
        Assert.True(document.GetProperty("paths").TryGetProperty("/transactions/{id}/branches", out _));

        using var health = await Client.GetAsync("/health");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
    }
}
