using System.Diagnostics.Metrics;
using System.Diagnostics;
using System.Net.Http.Json;
using System.Net;
using Dapper;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using TwoPC.Client;
using TwoPC.Coordinator.Server;
using TwoPC.Participants.Remote;
using TwoPC.TestServers.Internal;
using TwoPC.Testing;
using TwoPC.Transactions;

namespace TwoPC.Participants.Remote.Tests;

/// <summary>
/// The participant SDK in one process: the real coordinator server and a participant service on loopback,
/// a real PostgreSQL database, and handlers the tests control.
/// </summary>
[Collection(RemoteCollection.Name)]
public sealed class ParticipantSdkTests(RemoteFixture fixture) : IAsyncLifetime
{
    private const string Key = "sdk-service-key-0123456789-abcdefghijklmnop";
    private readonly DirectoryInfo _log = Directory.CreateTempSubdirectory("twopc-sdk-log-");
    private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource<(NpgsqlConnection Connection, int Pid)> _paused = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(60) };
    private WebApplication _coordinator = null!;
    private WebApplication _service = null!;
    private string _connectionString = string.Empty;
    private Uri _serviceUrl = null!;
    private TwoPCClient _client = null!;

    private RemoteParticipant Participant => _service.Services.GetRequiredService<RemoteParticipant>();

    public async Task InitializeAsync()
    {
        var port = FreePort.OnLoopback();
        _coordinator = await OneParticipantCoordinator.StartAsync("sdk-test", "sdk-service", port, Key, _log.FullName);
        var coordinatorUrl = new Uri(_coordinator.Urls.First() + "/");
        _client = new TwoPCClient(new HttpClient { BaseAddress = coordinatorUrl });
        _connectionString = await fixture.Server.CreateDatabaseAsync();
        _service = BuildService(coordinatorUrl, port, TimeSpan.FromSeconds(2));
        await _service.StartAsync();
        _serviceUrl = new Uri(_service.Urls.First() + "/");
    }

    public async Task DisposeAsync()
    {
        _release.TrySetResult();
        await _service.StopAsync();
        await _service.DisposeAsync();
        await _coordinator.StopAsync();
        await _coordinator.DisposeAsync();
        _client.Http.Dispose();
        _http.Dispose();
        _log.Delete(recursive: true);
    }

    [Fact]
    public async Task A_request_that_cannot_join_is_refused_before_its_handler_runs()
    {
        using var noHeader = await _http.PostAsJsonAsync(new Uri(_serviceUrl, "write"), new { id = "x" });
        Assert.Equal(HttpStatusCode.BadRequest, noHeader.StatusCode);

        using var hostile = await SendAsync("write", "'; DROP TABLE items; --", new { id = "x" });
        Assert.Equal(HttpStatusCode.BadRequest, hostile.StatusCode);
        var problem = await hostile.Content.ReadAsStringAsync();
        Assert.Contains("not a global transaction id", problem, StringComparison.Ordinal);

        using var unknown = await SendAsync("write", "sdk-test.ffff.1", new { id = "x" });
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);

        Assert.Equal(0, await CountAsync("x"));
    }

    [Fact]
    public async Task A_branch_that_wrote_nothing_votes_read_only()
    {
        await using var tx = await _client.BeginAsync();
        using var response = await SendAsync("read", tx.Id, new { id = "r" });
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        var outcome = await tx.CommitAsync();

        Assert.Equal(OutcomeKindDto.Committed, outcome.Kind);
        Assert.Equal(0, await PreparedAsync());
    }

    [Fact]
    public async Task A_handler_that_throws_rolls_its_branch_back_and_the_transaction_with_it()
    {
        await using var tx = await _client.BeginAsync();
        using var ok = await SendAsync("write", tx.Id, new { id = "t-1" });
        using var failed = await SendAsync("throw", tx.Id, new { id = "t-2" });
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        Assert.Equal(HttpStatusCode.InternalServerError, failed.StatusCode);

        var outcome = await tx.CommitAsync();

        Assert.Equal(OutcomeKindDto.RolledBack, outcome.Kind);
        Assert.Equal(0, await CountAsync("t-1"));
        Assert.Equal(0, await CountAsync("t-2"));
        Assert.Equal(0, await PreparedAsync());
    }

    [Fact]
    public async Task The_coordinators_prepare_call_hears_425_while_the_handler_works_then_yes()
    {
        var answers = new List<string>();
        using var listener = ListenToCallbacks(answers);
        await using var tx = await _client.BeginAsync(TimeSpan.FromSeconds(30));
        var slow = SendAsync("slow", tx.Id, new { id = "s-1" });
        await Eventually.TrueAsync(() => Task.FromResult(Participant.InFlightBranches == 1), TimeSpan.FromSeconds(10));

        var commit = tx.CommitAsync(); // the coordinator asks for the vote while the handler still works
        await Eventually.TrueAsync(() => Task.FromResult(Snapshot(answers).Contains("prepare:in progress")), TimeSpan.FromSeconds(10));
        Assert.False(commit.IsCompleted);
        _release.SetResult();

        using var response = await slow;
        var outcome = await commit;
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(OutcomeKindDto.Committed, outcome.Kind);
        Assert.Equal(1, await CountAsync("s-1"));
        Assert.Contains("prepare:Yes", Snapshot(answers));
    }

    [Fact]
    public async Task A_branch_still_working_at_the_deadline_is_rolled_back_and_cannot_prepare_afterwards()
    {
        await using var tx = await _client.BeginAsync(TimeSpan.FromSeconds(1));
        var slow = SendAsync("slow", tx.Id, new { id = "d-1" });

        // The coordinator's reaper rolls the transaction back at its deadline and tells the participant.
        await Eventually.TrueAsync(() => Task.FromResult(Participant.InFlightBranches == 1), TimeSpan.FromSeconds(10));
        await Eventually.TrueAsync(() => Task.FromResult(Participant.InFlightBranches == 0), TimeSpan.FromSeconds(20));
        await Eventually.TrueAsync(async () => (await _client.GetStatusAsync(tx.Id)).State == TransactionStateDto.RolledBack, TimeSpan.FromSeconds(20));
        _release.SetResult();
        using var response = await slow;

        Assert.Equal(HttpStatusCode.Conflict, response.StatusCode);
        Assert.Equal(0, await CountAsync("d-1"));
        Assert.Equal(0, await PreparedAsync());
    }

    [Fact]
    public async Task Item09_a_coordinator_rollback_while_the_handler_is_between_statements_ends_its_session_from_another_connection_only()
    {
        await using var tx = await _client.BeginAsync(TimeSpan.FromSeconds(30));
        var request = SendAsync("pause", tx.Id, new { id = "p-1" });
        var (connection, pid) = await _paused.Task.WaitAsync(TimeSpan.FromSeconds(30)); // the handler wrote, and waits before its next statement

        // The coordinator rolls back now: its rollback callback arrives while the handler still owns its connection.
        var outcome = await tx.RollbackAsync();
        Assert.Equal(OutcomeKindDto.RolledBack, outcome.Kind);

        // Npgsql connections are not thread-safe: the callback must not have rolled back or disposed the handler's
        // connection (it is still open as far as the handler's thread knows); it ended the session from another one.
        Assert.Equal(System.Data.ConnectionState.Open, connection.State);
        await Eventually.TrueAsync(async () => !await BackendAliveAsync(pid), TimeSpan.FromSeconds(10));

        // The handler's next statement fails (its session is gone) and the request's own thread cleans up its connection.
        _release.SetResult();
        using var response = await request;
        Assert.False(response.IsSuccessStatusCode, $"the handler's request answered {(int)response.StatusCode}");
        Assert.Equal(System.Data.ConnectionState.Closed, connection.State);
        Assert.Equal(0, await CountAsync("p-1"));
        Assert.Equal(0, await CountAsync("p-1-second"));
        Assert.Equal(0, await PreparedAsync());
        Assert.Equal(0, Participant.InFlightBranches);

        // The pool is sound: the next transaction's branch writes and commits.
        await using var next = await _client.BeginAsync(TimeSpan.FromSeconds(30));
        using var written = await SendAsync("write", next.Id, new { id = "p-2" });
        Assert.Equal(HttpStatusCode.OK, written.StatusCode);
        Assert.Equal(OutcomeKindDto.Committed, (await next.CommitAsync()).Kind);
        Assert.Equal(1, await CountAsync("p-2"));
    }

    [Fact]
    public async Task Recovery_presumes_abort_only_for_its_coordinators_branches_past_the_safety_interval()
    {
        var rm = Participant.ResourceManager;
        var orphan = Xid.ForBranch(new GlobalTransactionId(NodeId.Parse("sdk-test"), 0xdead, 1), 1);
        var foreign = Xid.ForBranch(new GlobalTransactionId(NodeId.Parse("other-node"), 1, 1), 1);
        foreach (var xid in new[] { orphan, foreign })
        {
            await using var branch = await rm.BeginBranchAsync(xid, DateTimeOffset.UtcNow.AddSeconds(30));
            await branch.Connection.ExecuteAsync("INSERT INTO items (id) VALUES (@id)", new { id = xid.ToString() }, branch.Transaction);
            Assert.Equal(TwoPC.Participants.VoteKind.Yes, (await branch.PrepareAsync(CancellationToken.None)).Kind);
        }

        var young = await Participant.RecoverAsync();
        Assert.Contains(young, r => r.Xid == orphan && r.CoordinatorState == "Unknown" && r.Action == RemoteRecoveryAction.LeftAlone);
        Assert.Contains(young, r => r.Xid == foreign && r.CoordinatorState == "OtherCoordinator");
        Assert.Equal(2, await PreparedAsync());

        await Task.Delay(TimeSpan.FromSeconds(2.5)); // past the 2 s safety interval of this service
        var old = await Participant.RecoverAsync();

        Assert.Contains(old, r => r.Xid == orphan && r.Action == RemoteRecoveryAction.RolledBack);
        Assert.Contains(old, r => r.Xid == foreign && r.Action == RemoteRecoveryAction.LeftAlone);
        Assert.Equal(1, await PreparedAsync());
        await rm.RollbackAsync(foreign, default, CancellationToken.None);
    }

    [Fact]
    public async Task The_callers_trace_continues_through_the_participant_and_its_registration_at_the_coordinator()
    {
        var stopped = new List<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = _ => true,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = a =>
            {
                lock (stopped)
                {
                    stopped.Add(a);
                }
            },
        };
        ActivitySource.AddActivityListener(listener);
        using var source = new ActivitySource("TwoPC.Remote.Tests.Caller");
        await using var tx = await _client.BeginAsync();

        ActivityTraceId traceId;
        using (var caller = source.StartActivity("checkout"))
        {
            traceId = caller!.TraceId;
            using var response = await SendAsync("write", tx.Id, new { id = "trace-1" }); // HttpClient sends traceparent
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        Assert.Equal(OutcomeKindDto.Committed, (await tx.CommitAsync()).Kind);
        List<Activity> seen;
        lock (stopped)
        {
            seen = [.. stopped.Where(a => a.TraceId == traceId)];
        }

        var names = string.Join(", ", seen.Select(a => $"{a.Source.Name}:{a.DisplayName}"));
        var branch = seen.SingleOrDefault(a => a.OperationName == "twopc.remote.branch");
        Assert.True(branch is not null, "no participant branch span in the caller's trace: " + names);

        // The registration is an HTTP call made inside the branch span, and the coordinator's request span is its child.
        var registration = seen.SingleOrDefault(a => a.Source.Name == "System.Net.Http" && a.ParentSpanId == branch.SpanId);
        Assert.True(registration is not null, "the registration call is not a child of the branch span: " + names);
        Assert.Contains(seen, a => a.OperationName == "Microsoft.AspNetCore.Hosting.HttpRequestIn" && a.ParentSpanId == registration.SpanId);
    }

    [Fact]
    public async Task Only_the_coordinator_signing_with_the_participants_key_can_commit_or_roll_back_a_prepared_branch()
    {
        await using var tx = await _client.BeginAsync();
        using var written = await SendAsync("write", tx.Id, new { id = "k-1" });
        Assert.Equal(HttpStatusCode.OK, written.StatusCode);
        var xid = (await _client.GetStatusAsync(tx.Id)).Branches!.Single().Xid;

        foreach (var action in new[] { "commit", "rollback", "prepare" })
        {
            foreach (var key in new[] { null, Key })
            {
                // Unsigned, and with the key itself in the old shared-key header: neither is a signature.
                using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(_serviceUrl, "twopc/" + action)) { Content = JsonContent.Create(new { xid }) };
                if (key is not null)
                {
                    request.Headers.Add("TwoPC-Callback-Key", key);
                }

                using var forged = await _http.SendAsync(request);
                Assert.Equal(HttpStatusCode.Unauthorized, forged.StatusCode);
            }
        }

        Assert.Equal(1, await PreparedAsync()); // untouched by the forged calls
        Assert.Equal(0, await CountAsync("k-1"));
        Assert.Equal(OutcomeKindDto.Committed, (await tx.CommitAsync()).Kind); // the coordinator signs
        Assert.Equal(1, await CountAsync("k-1"));
    }

    [Fact]
    public async Task A_participant_without_a_callback_url_fails_to_start_naming_the_setting()
    {
        var app = BuildService(new Uri("http://127.0.0.1:1/"), FreePort.OnLoopback(), TimeSpan.FromSeconds(30), callbackUrl: false);
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => app.StartAsync());
        Assert.Contains("TwoPC:Participant:CallbackUrl", error.Message, StringComparison.Ordinal);
        await app.DisposeAsync();
    }

    private WebApplication BuildService(Uri coordinatorUrl, int port, TimeSpan orphanSafety, bool callbackUrl = true)
    {
        var app = OneParticipantService.Build(_connectionString, "sdk-service", port, coordinatorUrl, Key, o =>
        {
            o.CallbackUrl = callbackUrl ? o.CallbackUrl : null;
            o.RecoveryInterval = TimeSpan.FromHours(1); // only the pass at start runs by itself; tests call RecoverAsync
            o.OrphanSafetyInterval = orphanSafety;
        });
        if (callbackUrl)
        {
            OneParticipantService.CreateItemsTableAsync(_connectionString).GetAwaiter().GetResult();
        }

        app.MapPost("/write", async (Item item, RemoteBranch branch) =>
        {
            await branch.Connection.ExecuteAsync("INSERT INTO items (id) VALUES (@Id)", item, branch.Transaction);
            return Results.Ok();
        }).AsTwoPCBranch();
        app.MapPost("/read", async (RemoteBranch branch) => Results.Ok(await branch.Connection.ExecuteScalarAsync<long>("SELECT count(*) FROM items", transaction: branch.Transaction))).AsTwoPCBranch();
        app.MapPost("/throw", async (Item item, RemoteBranch branch) =>
        {
            await branch.Connection.ExecuteAsync("INSERT INTO items (id) VALUES (@Id)", item, branch.Transaction);
            throw new InvalidOperationException("the handler failed after writing");
        }).AsTwoPCBranch();
        app.MapPost("/pause", async (Item item, RemoteBranch branch) =>
        {
            // Two statements with a pause between them, during which the test has the coordinator roll back.
            await branch.Connection.ExecuteAsync("INSERT INTO items (id) VALUES (@Id)", item, branch.Transaction);
            _paused.TrySetResult((branch.Connection, branch.Connection.ProcessID));
            await _release.Task;
            await branch.Connection.ExecuteAsync("INSERT INTO items (id) VALUES (@Id)", new Item(item.Id + "-second"), branch.Transaction);
            return Results.Ok();
        }).AsTwoPCBranch();
        app.MapPost("/slow", async (Item item, RemoteBranch branch) =>
        {
            await branch.Connection.ExecuteAsync("INSERT INTO items (id) VALUES (@Id)", item, branch.Transaction);
            await _release.Task;
            return Results.Ok();
        }).AsTwoPCBranch();
        return app;
    }

    private async Task<HttpResponseMessage> SendAsync(string path, string transactionId, object body)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(_serviceUrl, path)) { Content = JsonContent.Create(body) };
        request.Headers.TryAddWithoutValidation(TwoPCHeaders.TransactionId, transactionId);
        return await _http.SendAsync(request);
    }

    private async Task<long> CountAsync(string id)
    {
        await using var connection = new NpgsqlConnection(_connectionString);
        return await connection.ExecuteScalarAsync<long>("SELECT count(*) FROM items WHERE id = @id", new { id });
    }

    private async Task<bool> BackendAliveAsync(int pid)
    {
        await using var connection = new NpgsqlConnection(_connectionString);
        return await connection.ExecuteScalarAsync<long>("SELECT count(*) FROM pg_stat_activity WHERE pid = @pid", new { pid }) > 0;
    }

    private async Task<long> PreparedAsync()
    {
        await using var connection = new NpgsqlConnection(_connectionString);
        return await connection.ExecuteScalarAsync<long>("SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database()");
    }

    private static MeterListener ListenToCallbacks(List<string> answers)
    {
        var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Name == "twopc.remote.callbacks")
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((_, _, tags, _) =>
        {
            string? action = null, answer = null;
            foreach (var tag in tags)
            {
                if (tag.Key == "twopc.action") action = tag.Value as string;
                if (tag.Key == "twopc.answer") answer = tag.Value as string;
            }

            lock (answers)
            {
                answers.Add($"{action}:{answer}");
            }
        });
        listener.Start();
        return listener;
    }

    private static List<string> Snapshot(List<string> answers)
    {
        lock (answers)
        {
            return [.. answers];
        }
    }

    public sealed record Item(string Id);
}
