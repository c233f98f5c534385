using System.Net;
using System.Net.Http.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using TwoPC.Client;
using TwoPC.Testing;

namespace TwoPC.Participants.Remote.Tests;

/// <summary>
/// The coordinator and two participant services (ledgers "alpha" and "beta", each with its own database) as
/// three separate processes on loopback; crashes are SIGKILLs of a real process at a named step.
/// </summary>
[Collection(RemoteCollection.Name)]
public sealed partial class MultiProcessTests(RemoteFixture fixture) : IAsyncLifetime
{
    private readonly DirectoryInfo _log = Directory.CreateTempSubdirectory("twopc-remote-log-");
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(60) };
    private CoordinatorProcess _coordinator = null!;
    private LedgerProcess _alpha = null!;
    private LedgerProcess _beta = null!;
    private TwoPCClient _client = null!;

    public async Task InitializeAsync()
    {
        _coordinator = new CoordinatorProcess(_log.FullName);
        _alpha = new LedgerProcess("alpha", await fixture.Server.CreateDatabaseAsync(), _coordinator.Url);
        _beta = new LedgerProcess("beta", await fixture.Server.CreateDatabaseAsync(), _coordinator.Url);
        _coordinator.Participants.AddRange([_alpha, _beta]); // configured with their callback URLs and keys
        await _coordinator.StartAsync();
        _client = new TwoPCClient(new HttpClient { BaseAddress = _coordinator.Url, Timeout = TimeSpan.FromSeconds(60) });
        await Task.WhenAll(_alpha.StartAsync(), _beta.StartAsync());
    }

    public Task DisposeAsync()
    {
        _alpha.Dispose();
        _beta.Dispose();
        _coordinator.Dispose();
        _client.Http.Dispose();
        _http.Dispose();
        _log.Delete(recursive: true);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task Both_services_commit_together()
    {
        await using var tx = await _client.BeginAsync(TimeSpan.FromSeconds(30));
        await PostEntryAsync(_alpha, tx, "a-1", 10, HttpStatusCode.OK);
        await PostEntryAsync(_beta, tx, "b-1", -10, HttpStatusCode.OK);

        var outcome = await tx.CommitAsync();

        Assert.Equal(OutcomeKindDto.Committed, outcome.Kind);
        Assert.Equal(1, await _alpha.CountAsync("a-1"));
        Assert.Equal(1, await _beta.CountAsync("b-1"));
        Assert.Equal(0, await _alpha.PreparedAsync());
        Assert.Equal(0, await _beta.PreparedAsync());
    }

    [Fact]
    public async Task A_No_vote_rolls_back_the_other_service()
    {
        await using var tx = await _client.BeginAsync(TimeSpan.FromSeconds(30));
        await PostEntryAsync(_alpha, tx, "a-2", 10, HttpStatusCode.OK);

        // beta writes, then its handler fails: the branch rolls back and votes No when the coordinator asks.
        await PostEntryAsync(_beta, tx, "b-2", -10, HttpStatusCode.UnprocessableEntity, fail: true);
        var outcome = await tx.CommitAsync();

        Assert.Equal(OutcomeKindDto.RolledBack, outcome.Kind);
        Assert.Contains(outcome.Branches, b => b.ResourceManager == "beta" && b.Vote == BranchVoteDto.No);
        Assert.Equal(0, await _alpha.CountAsync("a-2"));
        Assert.Equal(0, await _beta.CountAsync("b-2"));
        Assert.Equal(0, await _alpha.PreparedAsync());
        Assert.Equal(0, await _beta.PreparedAsync());
    }

    [Fact]
    public async Task A_branch_request_without_a_live_transaction_is_refused_and_writes_nothing()
    {
        using var missing = new HttpRequestMessage(HttpMethod.Post, new Uri(_alpha.Url, "entries")) { Content = JsonContent("a-3") };
        using var noHeader = await _http.SendAsync(missing);
        Assert.Equal(HttpStatusCode.BadRequest, noHeader.StatusCode);

        await using var tx = await _client.BeginAsync(TimeSpan.FromSeconds(30));
        await tx.CommitAsync();
        await PostEntryAsync(_alpha, tx, "a-3", 1, HttpStatusCode.Conflict); // no longer active

        Assert.Equal(0, await _alpha.CountAsync("a-3"));
    }

    [Fact]
    public async Task Coordinator_killed_mid_phase_two_finishes_the_commit_after_restart()
    {
        await using var tx = await _client.BeginAsync(TimeSpan.FromSeconds(30));
        await PostEntryAsync(_alpha, tx, "a-4", 10, HttpStatusCode.OK);
        await PostEntryAsync(_beta, tx, "b-4", -10, HttpStatusCode.OK);
        await HoldNextCommitAsync(_beta);

        // The decision is logged and alpha commits; beta's commit callback is held: SIGKILL the coordinator now.
        var commit = tx.CommitAsync();
        Assert.NotNull(await _beta.Process.WaitForLineAsync(TimeSpan.FromSeconds(30), "commit-held"));
        await Eventually.TrueAsync(async () => await _alpha.CountAsync("a-4") == 1, TimeSpan.FromSeconds(30), _coordinator.Process.Describe);
        _coordinator.Kill();
        await Assert.ThrowsAnyAsync<Exception>(() => commit);
        Assert.Equal(0, await _beta.CountAsync("b-4"));
        Assert.Equal(1, await _beta.PreparedAsync());

        await _coordinator.StartAsync(); // same port, same log: recovery re-drives the logged decision

        await Eventually.TrueAsync(async () => await _beta.CountAsync("b-4") == 1, TimeSpan.FromSeconds(60), _coordinator.Process.Describe);
        Assert.Equal(1, await _alpha.CountAsync("a-4"));
        await Eventually.TrueAsync(async () => await _beta.PreparedAsync() == 0, TimeSpan.FromSeconds(30));
        Assert.Equal(0, await _alpha.PreparedAsync());
        await Eventually.TrueAsync(async () => (await _client.GetStatusAsync(tx.Id)).State == TransactionStateDto.Committed, TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task Item07_a_participant_restarted_after_its_commit_answers_the_redriven_commit_exactly_not_unknown()
    {
        // Alpha commits, then the coordinator dies before hearing every answer and alpha restarts too (its memory
        // of the branch is gone, and PostgreSQL no longer has it prepared). The restarted coordinator re-drives the
        // logged decision: alpha must answer Committed from the recovery data it handed over at prepare (its
        // database transaction id, checked with pg_xact_status), not "unknown" — which would be a heuristic hazard.
        await using var tx = await _client.BeginAsync(TimeSpan.FromSeconds(30));
        await PostEntryAsync(_alpha, tx, "a-9", 10, HttpStatusCode.OK);
        await PostEntryAsync(_beta, tx, "b-9", -10, HttpStatusCode.OK);
        await HoldNextCommitAsync(_beta);

        var commit = tx.CommitAsync();
        Assert.NotNull(await _beta.Process.WaitForLineAsync(TimeSpan.FromSeconds(30), "commit-held"));
        await Eventually.TrueAsync(async () => await _alpha.CountAsync("a-9") == 1, TimeSpan.FromSeconds(30), _coordinator.Process.Describe);
        _coordinator.Kill();
        await Assert.ThrowsAnyAsync<Exception>(() => commit);
        _alpha.Kill();
        await _alpha.StartAsync();

        await _coordinator.StartAsync(); // same log: recovery re-drives the decision to both participants

        await Eventually.TrueAsync(async () => await _beta.CountAsync("b-9") == 1, TimeSpan.FromSeconds(60), _coordinator.Process.Describe);
        await Eventually.TrueAsync(async () => (await _client.GetStatusAsync(tx.Id)).State is TransactionStateDto.Committed or TransactionStateDto.Heuristic, TimeSpan.FromSeconds(30), _coordinator.Process.Describe);
        var status = await _client.GetStatusAsync(tx.Id);
        Assert.True(status.State == TransactionStateDto.Committed, $"expected Committed, got {status.State}: {status.Outcome?.Reason}\n{_coordinator.Process.Describe()}");
        Assert.Equal(1, await _alpha.CountAsync("a-9"));
    }

    [Fact]
    public async Task Coordinator_killed_before_its_decision_leaves_prepared_branches_that_the_participants_roll_back()
    {
        var tx = await _client.BeginAsync(TimeSpan.FromSeconds(6)); // long enough for both branches to prepare on a loaded machine
        await PostEntryAsync(_alpha, tx, "a-7", 10, HttpStatusCode.OK);
        await PostEntryAsync(_beta, tx, "b-7", -10, HttpStatusCode.OK);
        Assert.Equal(1, await _alpha.PreparedAsync());
        Assert.Equal(1, await _beta.PreparedAsync());

        _coordinator.Kill(); // both branches prepared, no decision logged
        await _coordinator.StartAsync(); // a new epoch: the old transaction is unknown to it, so never committed

        // Each participant asks about its prepared branch once the deadline has passed and, hearing "no record",
        // rolls it back (presumed abort): nothing stays prepared, nothing is committed.
        await Eventually.TrueAsync(async () => await _alpha.PreparedAsync() == 0 && await _beta.PreparedAsync() == 0, TimeSpan.FromSeconds(45), _alpha.Process.Describe);
        Assert.Equal(0, await _alpha.CountAsync("a-7"));
        Assert.Equal(0, await _beta.CountAsync("b-7"));
        Assert.Equal(TransactionStateDto.Unknown, (await _client.GetStatusAsync(tx.Id)).State);
    }

    [Fact]
    public async Task Participant_killed_after_prepare_is_rolled_back_by_its_own_recovery_on_restart()
    {
        await using var tx = await _client.BeginAsync(TimeSpan.FromSeconds(30));
        await PostEntryAsync(_alpha, tx, "a-5", 10, HttpStatusCode.OK);
        await PostEntryAsync(_beta, tx, "b-5", -10, HttpStatusCode.OK, relay: false); // beta's signed vote is not relayed
        Assert.Equal(1, await _beta.PreparedAsync());

        _beta.Kill(); // prepared in PostgreSQL, and its service gone before the coordinator asks for its vote
        var outcome = await tx.CommitAsync();

        Assert.Equal(OutcomeKindDto.RolledBack, outcome.Kind);
        Assert.Equal(0, await _alpha.CountAsync("a-5"));
        Assert.Equal(1, await _beta.PreparedAsync()); // nobody could tell beta yet

        await _beta.StartAsync(); // its recovery asks the coordinator, which rolled the transaction back

        await Eventually.TrueAsync(async () => await _beta.PreparedAsync() == 0, TimeSpan.FromSeconds(30), _beta.Process.Describe);
        Assert.Equal(0, await _beta.CountAsync("b-5"));
        Assert.Equal(0, await _alpha.PreparedAsync());
    }

    [Fact]
    public async Task Participant_killed_after_the_commit_decision_commits_on_restart()
    {
        await using var tx = await _client.BeginAsync(TimeSpan.FromSeconds(30));
        await PostEntryAsync(_alpha, tx, "a-6", 10, HttpStatusCode.OK);
        await PostEntryAsync(_beta, tx, "b-6", -10, HttpStatusCode.OK);
        await HoldNextCommitAsync(_beta);

        var commit = tx.CommitAsync();
        Assert.NotNull(await _beta.Process.WaitForLineAsync(TimeSpan.FromSeconds(30), "commit-held"));
        _beta.Kill(); // the decision is logged; beta dies holding its commit call
        Assert.Equal(1, await _beta.PreparedAsync());

        await _beta.StartAsync(); // the coordinator's retries (or beta's own recovery) commit it

        var outcome = await commit.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(OutcomeKindDto.Committed, outcome.Kind);
        Assert.Equal(1, await _alpha.CountAsync("a-6"));
        await Eventually.TrueAsync(async () => await _beta.CountAsync("b-6") == 1, TimeSpan.FromSeconds(30), _beta.Process.Describe);
        Assert.Equal(0, await _beta.PreparedAsync());
    }

    [Fact]
    public async Task Item10_a_lone_remote_branch_whose_commit_callback_fails_once_with_503_ends_committed()
    {
        await using var tx = await _client.BeginAsync(TimeSpan.FromSeconds(30));
        await PostEntryAsync(_alpha, tx, "a-10", 10, HttpStatusCode.OK);
        await FailNextCommitAsync(_alpha);

        // The only branch votes Yes; its first /commit answers 503. The commit decision is logged and phase 2 asks again.
        var outcome = await tx.CommitAsync();

        Assert.NotNull(await _alpha.Process.WaitForLineAsync(TimeSpan.FromSeconds(5), "commit-failed"));
        Assert.True(outcome.Kind == OutcomeKindDto.Committed, $"{outcome.Kind}: {outcome.Reason}\n{_coordinator.Process.Describe()}");
        Assert.Equal(1, await _alpha.CountAsync("a-10"));
        Assert.Equal(0, await _alpha.PreparedAsync());
        Assert.Equal(TransactionStateDto.Committed, (await _client.GetStatusAsync(tx.Id)).State);
        Assert.Empty(await AdminHeuristicsAsync());
    }

    [Fact]
    public async Task Item10_a_lone_remote_branch_whose_participant_restarts_during_its_commit_ends_committed()
    {
        await using var tx = await _client.BeginAsync(TimeSpan.FromSeconds(30));
        await PostEntryAsync(_alpha, tx, "a-11", 10, HttpStatusCode.OK);
        await HoldNextCommitAsync(_alpha);

        var commit = tx.CommitAsync();
        Assert.NotNull(await _alpha.Process.WaitForLineAsync(TimeSpan.FromSeconds(30), "commit-held"));
        _alpha.Kill(); // the participant dies holding the commit call of the only branch
        Assert.Equal(1, await _alpha.PreparedAsync());
        await _alpha.StartAsync();

        var outcome = await commit.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.True(outcome.Kind == OutcomeKindDto.Committed, $"{outcome.Kind}: {outcome.Reason}\n{_coordinator.Process.Describe()}");
        await Eventually.TrueAsync(async () => await _alpha.CountAsync("a-11") == 1, TimeSpan.FromSeconds(30), _alpha.Process.Describe);
        Assert.Equal(0, await _alpha.PreparedAsync());
        Assert.Empty(await AdminHeuristicsAsync());
    }

    [Fact]
    public async Task Item11_a_participant_never_presumes_abort_for_a_branch_of_a_coordinator_node_it_cannot_ask()
    {
        // A commit decision is logged under the coordinator's node id; alpha commits, beta's commit is held when the
        // coordinator is SIGKILLed. Beta's participant has already learned (and cached) that node id.
        await using var tx = await _client.BeginAsync(TimeSpan.FromSeconds(15));
        await PostEntryAsync(_alpha, tx, "a-12", 10, HttpStatusCode.OK);
        await PostEntryAsync(_beta, tx, "b-12", -10, HttpStatusCode.OK);
        await HoldNextCommitAsync(_beta);
        var commit = tx.CommitAsync();
        Assert.NotNull(await _beta.Process.WaitForLineAsync(TimeSpan.FromSeconds(30), "commit-held"));
        await Eventually.TrueAsync(async () => await _alpha.CountAsync("a-12") == 1, TimeSpan.FromSeconds(30), _coordinator.Process.Describe);
        _coordinator.Kill();
        await Assert.ThrowsAnyAsync<Exception>(() => commit);

        // The coordinator comes back at the same address under another node id, on a new log: it has no record of the
        // old node's transactions and answers "Unknown" for them. Beta must not take that for presumed abort.
        var (oldNode, oldLog) = (_coordinator.NodeId, _coordinator.LogDirectory);
        var newLog = Directory.CreateTempSubdirectory("twopc-remote-renamed-");
        try
        {
            _coordinator.NodeId = CoordinatorProcess.NewNodeId();
            _coordinator.LogDirectory = newLog.FullName;
            await _coordinator.StartAsync();

            // Beta's recovery passes (every 0.5 s) look at the branch: it must stay prepared, with a warning. (Caching the old
            // node id, beta used to ask the new coordinator, hear "Unknown", and roll it back once past its deadline.)
            await Eventually.TrueAsync(
                async () => _beta.Process.Describe().Contains("never presumed aborted", StringComparison.Ordinal) || await _beta.PreparedAsync() == 0,
                TimeSpan.FromSeconds(60),
                _beta.Process.Describe);
            Assert.True(await _beta.PreparedAsync() == 1, "beta rolled back a branch whose decision is in the old node's log\n" + _beta.Process.Describe());
            Assert.Equal(0, await _beta.CountAsync("b-12"));

            // The old node's coordinator, on its own log, re-drives its decision: beta commits, atomic with alpha.
            _coordinator.Kill();
            (_coordinator.NodeId, _coordinator.LogDirectory) = (oldNode, oldLog);
            await _coordinator.StartAsync();
            await Eventually.TrueAsync(async () => await _beta.CountAsync("b-12") == 1, TimeSpan.FromSeconds(60), _beta.Process.Describe);
            Assert.Equal(1, await _alpha.CountAsync("a-12"));
            await Eventually.TrueAsync(async () => await _beta.PreparedAsync() == 0, TimeSpan.FromSeconds(30));
        }
        finally
        {
            _coordinator.Kill();
            newLog.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task Item01_an_attacker_registering_its_own_listener_as_a_callback_url_gets_403_and_its_listener_receives_nothing()
    {
        var heard = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var builder = Microsoft.AspNetCore.Builder.WebApplication.CreateBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        await using var attacker = builder.Build();
        attacker.Run(context =>
        {
            heard.Enqueue($"{context.Request.Method} {context.Request.Path} {string.Join(",", context.Request.Headers.Select(h => h.Key))}");
            return Microsoft.AspNetCore.Http.HttpResponseWritingExtensions.WriteAsync(context.Response, "{\"vote\":\"yes\"}");
        });
        await attacker.StartAsync();
        var stealUrl = attacker.Urls.First() + "/steal";

        await using var tx = await _client.BeginAsync(TimeSpan.FromSeconds(30));
        await PostEntryAsync(_alpha, tx, "a-13", 10, HttpStatusCode.OK);
        foreach (var name in new[] { "alpha", "mallory" })
        {
            using var register = await _http.PostAsJsonAsync(new Uri(_coordinator.Url, $"transactions/{tx.Id}/branches"), new { resourceManager = name, callbackUrl = stealUrl });
            Assert.True(register.StatusCode == HttpStatusCode.Forbidden, $"{name}: {(int)register.StatusCode} {await register.Content.ReadAsStringAsync()}");
        }

        Assert.Equal(OutcomeKindDto.Committed, (await tx.CommitAsync()).Kind);
        Assert.Equal(1, await _alpha.CountAsync("a-13"));
        Assert.Empty(heard);
        await attacker.StopAsync();
    }

    [Fact]
    public async Task Item03_a_ledger_process_without_a_key_refuses_to_start_with_a_clear_message()
    {
        using var process = CrashHostProcess.StartProgram(Path.Combine("Tests", "TwoPC.RemoteHost"), [
            $"--Urls=http://127.0.0.1:{TwoPC.TestServers.Internal.FreePort.OnLoopback()}",
            $"--ConnectionString={_alpha.ConnectionString}",
            "--TwoPC:Participant:Name=keyless",
            $"--TwoPC:Participant:CoordinatorUrl={_coordinator.Url}",
            "--TwoPC:Participant:CallbackUrl=http://127.0.0.1:1/twopc",
        ]);
        var exit = await process.WaitForExitAsync(TimeSpan.FromSeconds(60));
        Assert.NotEqual(0, exit);
        Assert.Contains("TwoPC:Participant:Key is required", process.Describe(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Item03_a_coordinator_process_with_a_callback_protection_off_says_so_at_start()
    {
        var log = Directory.CreateTempSubdirectory("twopc-remote-dev-");
        try
        {
            using var process = CrashHostProcess.StartProgram(Path.Combine("Coordinator", "TwoPC.Coordinator.Server"), [
                $"--Urls=http://127.0.0.1:{TwoPC.TestServers.Internal.FreePort.OnLoopback()}",
                $"--TwoPC:NodeId={CoordinatorProcess.NewNodeId()}",
                $"--TwoPC:LogDirectory={log.FullName}",
                "--Coordinator:Authentication:AllowAnonymous=true",
                "--Coordinator:AllowUnauthenticatedCallbacks=true",
                "--Coordinator:AllowUnconfiguredParticipants=true",
                "--Coordinator:Participants:dev:CallbackUrl=http://127.0.0.1:1/twopc",
                "--Logging:LogLevel:Default=Warning",
                "--Logging:LogLevel:Microsoft.Hosting.Lifetime=Information",
            ]);
            await process.WaitForLineAsync(TimeSpan.FromSeconds(60), "Now listening on:", "      Now listening on:");
            var output = process.Describe();
            Assert.Contains("Coordinator:AllowUnauthenticatedCallbacks is true: participants configured without a key (dev)", output, StringComparison.Ordinal);
            Assert.Contains("Coordinator:AllowUnconfiguredParticipants is true", output, StringComparison.Ordinal);
            Assert.Contains("none listed: every unconfigured URL is refused", output, StringComparison.Ordinal);
            process.Kill();
        }
        finally
        {
            log.Delete(recursive: true);
        }
    }

    // relay: false is a caller that sends the transaction id by hand, so the participant's signed vote is not relayed
    // with the commit and the coordinator asks for it by callback.
    private async Task PostEntryAsync(LedgerProcess ledger, CoordinatorTransaction tx, string id, int amount, HttpStatusCode expected, bool fail = false, bool relay = true)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(ledger.Url, "entries")) { Content = System.Net.Http.Json.JsonContent.Create(new { id, amount, fail }) };
        if (!relay)
        {
            request.Headers.TryAddWithoutValidation(TwoPCHeaders.TransactionId, tx.Id);
        }

        using var response = relay ? await _http.SendInTransactionAsync(request, tx) : await _http.SendAsync(request);
        Assert.True(expected == response.StatusCode, $"{ledger.Name} answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}\n{ledger.Process.Describe()}");
    }

    private async Task HoldNextCommitAsync(LedgerProcess ledger)
    {
        using var response = await _http.PostAsync(new Uri(ledger.Url, "test/hold-next-commit"), null);
        response.EnsureSuccessStatusCode();
    }

    private async Task FailNextCommitAsync(LedgerProcess ledger)
    {
        using var response = await _http.PostAsync(new Uri(ledger.Url, "test/fail-next-commit"), null);
        response.EnsureSuccessStatusCode();
    }

    private Task<IReadOnlyList<HeuristicDto>> AdminHeuristicsAsync() => new TwoPCAdminClient(_client.Http, CoordinatorProcess.AdminKey).ListHeuristicsAsync();

    private static StringContent JsonContent(string id) => new($"{{\"id\":\"{id}\",\"amount\":1}}", System.Text.Encoding.UTF8, "application/json");
}
