using System.Net.Http.Json;
using System.Net;
using System.Text.Json;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using TwoPC.Protocol;
using TwoPC.Testing;

namespace TwoPC.Coordinator.Server.Tests;

/// <summary>The operator's admin API on a real server: in-doubt listing, forced commit/rollback under the safety rules, heuristics.</summary>
public sealed class AdminApiTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    private HttpClient Client => server.Client;

    private Participants Participants => server.Participants;

    [Fact]
    public async Task A_branch_whose_commit_is_retried_is_listed_in_doubt_refuses_a_forced_rollback_and_takes_a_forced_commit()
    {
        Participants.CommitStatus["stuck-b"] = StatusCodes500;
        var id = await BeginAsync(Client);
        var xa = await RegisterAsync(Client, id, "stuck-a");
        var xb = await RegisterAsync(Client, id, "stuck-b");
        var commit = Client.PostAsync($"/transactions/{id}/commit", null);

        var listed = await WaitForInDoubtAsync(Client, xb, b => b.GetProperty("detail").GetString()!.Contains("failed to answer commit", StringComparison.Ordinal)); // the status code itself is logged, not returned
        Assert.Equal(id, listed.GetProperty("transactionId").GetString());
        Assert.Equal("stuck-b", listed.GetProperty("resourceManager").GetString());
        Assert.Equal("Committing", listed.GetProperty("resolution").GetString());
        Assert.True(listed.GetProperty("ageSeconds").GetDouble() >= 0);
        await WaitUntilAsync(async () => !(await ListInDoubtAsync(Client)).Any(b => b.GetProperty("xid").GetString() == xa));
        Assert.Equal("committed", Participants.States[("stuck-a", xa)]);

        // Show one transaction with its branches while phase 2 runs.
        var status = await Client.GetFromJsonAsync<JsonElement>($"/transactions/{id}");
        Assert.Equal("Committing", status.GetProperty("state").GetString());
        var branches = status.GetProperty("branches").EnumerateArray().ToDictionary(b => b.GetProperty("xid").GetString()!, b => b.GetProperty("outcome").ToString());
        Assert.Equal("Committed", branches[xa]);
        Assert.Equal(string.Empty, branches[xb]);

        // The safety rules: a commit decision is on record, so no forced rollback; nothing reaches the participant.
        using var rollback = await SendAdminAsync(Client, HttpMethod.Post, $"/admin/branches/{xb}/rollback", new { resourceManager = "stuck-b" });
        var problem = await AssertProblemAsync(rollback, HttpStatusCode.Conflict);
        Assert.Contains("commit decision", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal("prepared", Participants.States[("stuck-b", xb)]);
        Assert.DoesNotContain(Participants.Calls, c => c == $"stuck-b rollback {xb}");

        // A forced commit while the participant still fails: 502, the branch stays in doubt.
        using var failing = await SendAdminAsync(Client, HttpMethod.Post, $"/admin/branches/{xb}/commit", new { resourceManager = "stuck-b" });
        await AssertProblemAsync(failing, HttpStatusCode.BadGateway);
        Assert.Equal("prepared", Participants.States[("stuck-b", xb)]);

        // The participant is back: the forced commit succeeds (or finds phase 2 got there first; committed either way).
        Participants.CommitStatus.TryRemove("stuck-b", out _);
        using var forced = await SendAdminAsync(Client, HttpMethod.Post, $"/admin/branches/{xb}/commit", new { resourceManager = "stuck-b" });
        Assert.Equal(HttpStatusCode.OK, forced.StatusCode);
        var result = await forced.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(("Commit", "Committed", xb), (result.GetProperty("action").GetString(), result.GetProperty("outcome").GetString(), result.GetProperty("xid").GetString()));
        Assert.Equal("committed", Participants.States[("stuck-b", xb)]);

        using var finished = await commit;
        Assert.Equal("Committed", (await finished.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("kind").GetString());
        Assert.DoesNotContain(await ListInDoubtAsync(Client), b => b.GetProperty("xid").GetString() == xb);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("wrong-key")]
    public async Task Admin_endpoints_without_the_right_key_are_401_and_change_nothing(string? key)
    {
        Participants.CommitStatus["locked-b" + key] = StatusCodes425;
        var id = await BeginAsync(Client);
        await RegisterAsync(Client, id, "locked-a" + key);
        var xb = await RegisterAsync(Client, id, "locked-b" + key);
        var commit = Client.PostAsync($"/transactions/{id}/commit", null);
        await WaitForInDoubtAsync(Client, xb, _ => true);

        foreach (var (method, path, body) in new (HttpMethod, string, object?)[]
        {
            (HttpMethod.Get, "/admin/in-doubt", null),
            (HttpMethod.Post, $"/admin/branches/{xb}/rollback", new { resourceManager = "locked-b" + key }),
            (HttpMethod.Post, $"/admin/branches/{xb}/commit", new { resourceManager = "locked-b" + key, @override = true }),
        })
        {
            using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : JsonContent.Create(body) };
            if (key is not null)
            {
                request.Headers.Add("X-Api-Key", key);
            }

            using var response = await Client.SendAsync(request);
            await AssertProblemAsync(response, HttpStatusCode.Unauthorized);
        }

        Assert.Equal("prepared", Participants.States[("locked-b" + key, xb)]);
        Assert.DoesNotContain(Participants.Calls, c => c == $"locked-b{key} rollback {xb}");
        Assert.Equal("Committing", (await Client.GetFromJsonAsync<JsonElement>($"/transactions/{id}")).GetProperty("state").GetString());
        await WaitForInDoubtAsync(Client, xb, _ => true);

        Participants.CommitStatus.TryRemove("locked-b" + key, out _);
        using var finished = await commit;
        Assert.Equal("Committed", (await finished.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("kind").GetString());
    }

    [Theory]
    [InlineData("'; drop table", "{\"resourceManager\":\"x\"}")]
    [InlineData("\r\nX-Injected: 1", "{\"resourceManager\":\"x\"}")]
    [InlineData("54504331_server-test.0.1_1", "{not json")]
    [InlineData("54504331_server-test.0.1_1", "{}")]
    [InlineData("54504331_server-test.0.1_1", "{\"resourceManager\":\"\"}")]
    [InlineData("54504331_server-test.0.1_1", "[]")]
    public async Task A_malformed_xid_or_body_is_400(string xid, string body)
    {
        using var content = new StringContent(body, Encoding.UTF8, "application/json");
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/admin/branches/{Uri.EscapeDataString(xid)}/rollback") { Content = content };
        request.Headers.Add("X-Api-Key", ServerFixture.ApiKey);

        using var response = await Client.SendAsync(request);

        var problem = await AssertProblemAsync(response, HttpStatusCode.BadRequest);
        Assert.DoesNotContain('\n', problem.GetProperty("detail").GetString()!);
    }

    [Fact]
    public async Task Item10_an_unknown_resource_manager_is_404_and_a_forced_rollback_of_an_orphan_nobody_can_reach_fails_instead_of_reporting_RolledBack()
    {
        const string orphan = "54504331_server-test.0.5_1"; // an earlier epoch of this node: no record, presumed aborted
        using var unknown = await SendAdminAsync(Client, HttpMethod.Post, $"/admin/branches/{orphan}/rollback", new { resourceManager = "never-seen" });
        await AssertProblemAsync(unknown, HttpStatusCode.NotFound);
        var coordinator = server.Services.GetRequiredService<TransactionCoordinator>();
        Assert.DoesNotContain(coordinator.ResourceManagers, r => r.Name == "never-seen");

        // Allowed by the safety rules (presumed abort), but no callback URL is known for the orphan: the coordinator cannot
        // reach its participant, so it must not report it rolled back.
        var id = await BeginAsync(Client);
        await RegisterAsync(Client, id, "orphan-rm");
        Assert.Equal(1, Assert.IsType<HttpParticipantResourceManager>(coordinator.ResourceManagers.Single(r => r.Name == "orphan-rm")).RememberedCallbackUrls);
        using var unreachable = await SendAdminAsync(Client, HttpMethod.Post, $"/admin/branches/{orphan}/rollback", new { resourceManager = "orphan-rm" });
        var failed = await AssertProblemAsync(unreachable, HttpStatusCode.BadGateway);
        Assert.Contains("no callback URL is known", failed.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.DoesNotContain(Participants.Calls, c => c.EndsWith(orphan, StringComparison.Ordinal));

        // Committing it needs the override: presumed abort says it did not commit.
        using var refused = await SendAdminAsync(Client, HttpMethod.Post, $"/admin/branches/{orphan}/commit", new { resourceManager = "orphan-rm" });
        var problem = await AssertProblemAsync(refused, HttpStatusCode.Conflict);
        Assert.Contains("override", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        using var rollback = await Client.PostAsync($"/transactions/{id}/rollback", null);
    }

    [Fact]
    public async Task A_heuristic_outcome_is_listed_and_forgotten_through_the_api()
    {
        Participants.CommitRolledBack["heur-b"] = true;
        var id = await BeginAsync(Client);
        await RegisterAsync(Client, id, "heur-a");
        var xb = await RegisterAsync(Client, id, "heur-b");
        using var commit = await Client.PostAsync($"/transactions/{id}/commit", null);
        Assert.Equal("HeuristicMixed", (await commit.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("kind").GetString());

        using var list = await SendAdminAsync(Client, HttpMethod.Get, "/admin/heuristics", null);
        var heuristic = (await list.Content.ReadFromJsonAsync<JsonElement>()).EnumerateArray().Single(h => h.GetProperty("transactionId").GetString() == id);
        Assert.Equal("HeuristicMixed", heuristic.GetProperty("kind").GetString());
        Assert.Contains(heuristic.GetProperty("branches").EnumerateArray(), b => b.GetProperty("xid").GetString() == xb && b.GetProperty("outcome").GetString() == "RolledBack");

        using var forget = await SendAdminAsync(Client, HttpMethod.Post, $"/admin/transactions/{id}/forget", null);
        Assert.Equal(HttpStatusCode.NoContent, forget.StatusCode);
        using var again = await SendAdminAsync(Client, HttpMethod.Post, $"/admin/transactions/{id}/forget", null);
        await AssertProblemAsync(again, HttpStatusCode.NotFound);
        using var after = await SendAdminAsync(Client, HttpMethod.Get, "/admin/heuristics", null);
        Assert.DoesNotContain((await after.Content.ReadFromJsonAsync<JsonElement>()).EnumerateArray(), h => h.GetProperty("transactionId").GetString() == id);
    }

    [Fact]
    public async Task Item10_a_forced_rollback_of_a_branch_with_no_logged_decision_reaches_the_participant_at_its_registered_callback_url()
    {
        // b votes yes, a votes no: the transaction rolls back, but b's rollback callback fails; nothing is logged
        // (presumed abort), so b's callback URL is in no record.
        Participants.FailPrepare["nolog-a"] = true;
        Participants.RollbackStatus["nolog-b"] = StatusCodes500;
        var id = await BeginAsync(Client);
        var xb = await RegisterAsync(Client, id, "nolog-b");
        await RegisterAsync(Client, id, "nolog-a");
        using (var commit = await Client.PostAsync($"/transactions/{id}/commit", null))
        {
            Assert.Equal("RolledBack", (await commit.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("kind").GetString());
        }

        Assert.Equal("prepared", Participants.States[("nolog-b", xb)]);
        var calls = Participants.Calls.Count(c => c == $"nolog-b rollback {xb}");

        // The operator's forced rollback is a call to the participant at the URL it registered with, not a presumption.
        Participants.RollbackStatus.TryRemove("nolog-b", out _);
        using var forced = await SendAdminAsync(Client, HttpMethod.Post, $"/admin/branches/{xb}/rollback", new { resourceManager = "nolog-b" });
        Assert.Equal(HttpStatusCode.OK, forced.StatusCode);
        Assert.Equal("RolledBack", (await forced.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("outcome").GetString());
        Assert.Equal(calls + 1, Participants.Calls.Count(c => c == $"nolog-b rollback {xb}"));
        Assert.Equal("rolledBack", Participants.States[("nolog-b", xb)]);

        // Answered: the URL is no longer remembered (nor is a branch that voted no).
        var coordinator = server.Services.GetRequiredService<TransactionCoordinator>();
        Assert.Equal(0, Assert.IsType<HttpParticipantResourceManager>(coordinator.ResourceManagers.Single(r => r.Name == "nolog-b")).RememberedCallbackUrls);
        Assert.Equal(0, Assert.IsType<HttpParticipantResourceManager>(coordinator.ResourceManagers.Single(r => r.Name == "nolog-a")).RememberedCallbackUrls);
    }

    [Fact]
    public async Task Item10_a_heuristic_keeps_the_branch_callback_url_so_a_forced_commit_reaches_the_participant_after_a_restart()
    {
        var log = Directory.CreateTempSubdirectory("twopc-server-heuristic-");
        try
        {
            Participants.CommitRolledBack["hurl-b"] = true; // b reports it was rolled back by hand: HeuristicMixed
            string id, xb;
            var first = await StartServerAsync(log.FullName);
            try
            {
                using var client = new HttpClient { BaseAddress = new Uri(ServerFixture.BoundAddress(first)) };
                id = await BeginAsync(client);
                await RegisterAsync(client, id, "hurl-a");
                xb = await RegisterAsync(client, id, "hurl-b");
                using var commit = await client.PostAsync($"/transactions/{id}/commit", null);
                Assert.Equal("HeuristicMixed", (await commit.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("kind").GetString());
            }
            finally
            {
                await StopAsync(first);
            }

            // A new server knows the branch only from the heuristic record in the log: its recovery data is the callback URL.
            Participants.CommitRolledBack.TryRemove("hurl-b", out _);
            var second = await StartServerAsync(log.FullName);
            try
            {
                using var client = new HttpClient { BaseAddress = new Uri(ServerFixture.BoundAddress(second)) };
                using var forced = await SendAdminAsync(client, HttpMethod.Post, $"/admin/branches/{xb}/commit", new { resourceManager = "hurl-b" });
                Assert.True(forced.StatusCode == HttpStatusCode.OK, await forced.Content.ReadAsStringAsync());
                Assert.Equal("Committed", (await forced.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("outcome").GetString());
                Assert.Equal(2, Participants.Calls.Count(c => c == $"hurl-b commit {xb}"));
                Assert.Equal("committed", Participants.States[("hurl-b", xb)]);
            }
            finally
            {
                await StopAsync(second);
            }
        }
        finally
        {
            log.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task A_participant_answering_425_to_prepare_is_asked_again_and_committed()
    {
        Participants.PrepareTooEarly["early-b"] = 3;
        var id = await BeginAsync(Client);
        var xa = await RegisterAsync(Client, id, "early-a");
        var xb = await RegisterAsync(Client, id, "early-b");

        using var commit = await Client.PostAsync($"/transactions/{id}/commit", null);

        Assert.Equal("Committed", (await commit.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("kind").GetString());
        Assert.Equal(4, Participants.Calls.Count(c => c == $"early-b prepare {xb}"));
        Assert.Equal("committed", Participants.States[("early-b", xb)]);
        Assert.Equal("committed", Participants.States[("early-a", xa)]);
    }

    [Fact]
    public async Task OpenApi_describes_the_admin_endpoints()
    {
        var document = await Client.GetFromJsonAsync<JsonElement>("/openapi/v1.json");
        var paths = document.GetProperty("paths");
        Assert.True(paths.TryGetProperty("/admin/in-doubt", out _));
        var commit = paths.GetProperty("/admin/branches/{xid}/commit").GetProperty("post");
        Assert.True(commit.TryGetProperty("requestBody", out _));
        foreach (var status in new[] { "200", "400", "401", "404", "409" })
        {
            Assert.True(commit.GetProperty("responses").TryGetProperty(status, out _), status);
        }
    }

    [Fact]
    public async Task A_restarted_server_redrives_remote_branches_whose_names_are_not_configured()
    {
        var log = Directory.CreateTempSubdirectory("twopc-server-restart-");
        try
        {
            Participants.CommitStatus["restart-b"] = StatusCodes500;
            string id, xb;
            var first = await StartServerAsync(log.FullName);
            try
            {
                using var client = new HttpClient { BaseAddress = new Uri(ServerFixture.BoundAddress(first)) };
                id = await BeginAsync(client);
                await RegisterAsync(client, id, "restart-a");
                xb = await RegisterAsync(client, id, "restart-b");
                using var abandon = new CancellationTokenSource();
                var commit = client.PostAsync($"/transactions/{id}/commit", null, abandon.Token);
                await WaitForInDoubtAsync(client, xb, _ => true);
                await abandon.CancelAsync();
                await Assert.ThrowsAnyAsync<OperationCanceledException>(() => commit);
            }
            finally
            {
                await StopAsync(first);
            }

            // The decision is in the log and restart-b has not committed. The new server has no configured names.
            Assert.Equal("prepared", Participants.States[("restart-b", xb)]);
            Participants.CommitStatus.TryRemove("restart-b", out _);
            var second = await StartServerAsync(log.FullName);
            try
            {
                using var client = new HttpClient { BaseAddress = new Uri(ServerFixture.BoundAddress(second)) };
                var state = string.Empty;
                for (var i = 0; i < 500 && state != "Committed"; i++)
                {
                    state = (await client.GetFromJsonAsync<JsonElement>($"/transactions/{id}")).GetProperty("state").GetString()!;
                    await Task.Delay(20);
                }

                Assert.Equal("Committed", state);
                Assert.Equal("committed", Participants.States[("restart-b", xb)]);

                // The API reuses the instance recovery resolved: one remote resource manager per name.
                var again = await BeginAsync(client);
                await RegisterAsync(client, again, "restart-b");
                var coordinator = second.Services.GetRequiredService<TransactionCoordinator>();
                Assert.IsType<HttpParticipantResourceManager>(Assert.Single(coordinator.ResourceManagers, r => r.Name == "restart-b"));
                using var rollback = await client.PostAsync($"/transactions/{again}/rollback", null);
                Assert.Equal(HttpStatusCode.OK, rollback.StatusCode);
            }
            finally
            {
                await StopAsync(second);
            }
        }
        finally
        {
            log.Delete(recursive: true);
        }
    }

    private const int StatusCodes500 = 500;

    private const int StatusCodes425 = 425;

    private async Task<WebApplication> StartServerAsync(string logDirectory)
    {
        var app = CoordinatorServer.BuildApp([
            "--Urls=http://127.0.0.1:0",
            "--TwoPC:NodeId=restart-test",
            "--Coordinator:Authentication:AllowAnonymous=true", // these tests call anonymously, on loopback
            $"--TwoPC:LogDirectory={logDirectory}",
            "--TwoPC:RetryMaxDelay=00:00:00.200",
            $"--Admin:ApiKey={ServerFixture.ApiKey}",
            .. ServerFixture.DevelopmentParticipants(Participants.BaseAddress),
            "--Logging:LogLevel:Default=Warning",
        ]);
        await app.StartAsync();
        return app;
    }

    /// <summary>Stops a server whose phase 2 may be stuck without waiting out the host's shutdown timeout.</summary>
    private static async Task StopAsync(WebApplication app)
    {
        using var shortly = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        try
        {
            await app.StopAsync(shortly.Token);
        }
        catch (OperationCanceledException)
        {
        }

        await app.DisposeAsync();
    }

    internal static async Task<string> BeginAsync(HttpClient client)
    {
        using var response = await client.PostAsJsonAsync("/transactions", new { timeoutSeconds = 30 });
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
    }

    private async Task<string> RegisterAsync(HttpClient client, string id, string name)
    {
        using var response = await client.PostAsJsonAsync($"/transactions/{id}/branches", new { resourceManager = name, callbackUrl = Participants.CallbackUrl(name) });
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("xid").GetString()!;
    }

    private static async Task<HttpResponseMessage> SendAdminAsync(HttpClient client, HttpMethod method, string path, object? body)
    {
        using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : JsonContent.Create(body) };
        request.Headers.Add("X-Api-Key", ServerFixture.ApiKey);
        return await client.SendAsync(request);
    }

    private static async Task<List<JsonElement>> ListInDoubtAsync(HttpClient client)
    {
        using var response = await SendAdminAsync(client, HttpMethod.Get, "/admin/in-doubt", null);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return [.. (await response.Content.ReadFromJsonAsync<JsonElement>()).EnumerateArray()];
    }

    private static Task WaitUntilAsync(Func<Task<bool>> condition) => Eventually.TrueAsync(condition, TimeSpan.FromSeconds(10));

    /// <summary>Polls <c>GET /admin/in-doubt</c> until the branch <paramref name="xid"/> is listed and matches.</summary>
    private static async Task<JsonElement> WaitForInDoubtAsync(HttpClient client, string xid, Func<JsonElement, bool> matches)
    {
        for (var i = 0; i < 500; i++)
        {
            var found = (await ListInDoubtAsync(client)).FirstOrDefault(b => b.GetProperty("xid").GetString() == xid);
            if (found.ValueKind == JsonValueKind.Object && matches(found))
            {
                return found;
            }

            await Task.Delay(20);
        }

        Assert.Fail($"{xid} was not listed in doubt as expected");
        return default;
    }

    private static async Task<JsonElement> AssertProblemAsync(HttpResponseMessage response, HttpStatusCode status)
    {
        Assert.Equal(status, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal((int)status, problem.GetProperty("status").GetInt32());
        Assert.DoesNotContain(" at TwoPC.", problem.ToString(), StringComparison.Ordinal);
        return problem;
    }
}
