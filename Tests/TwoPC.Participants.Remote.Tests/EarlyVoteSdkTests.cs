using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Http.Json;
using Dapper;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Npgsql;
using TwoPC.Client;
using TwoPC.Coordinator.Server;
using TwoPC.TestServers.Internal;

namespace TwoPC.Participants.Remote.Tests;

/// <summary>
/// Issue 13, item 3, with the real SDK, client, coordinator and PostgreSQL: a participant answers its branch request with its
/// Yes vote signed (the client relays it with the commit), or reports it directly right after PREPARE, so phase 1 sends it no
/// prepare callback; a participant that does neither (an older SDK: both options off), or whose vote a caller does not relay,
/// is asked by callback in the same transaction.
/// </summary>
[Collection(RemoteCollection.Name)]
public sealed class EarlyVoteSdkTests(RemoteFixture fixture) : IAsyncLifetime
{
    private const string NewKey = "early-vote-new-service-key-0123456789-abcdef";
    private const string OldKey = "early-vote-old-service-key-0123456789-abcdef";
    private const string DirectKey = "early-vote-direct-service-key-0123456789-abc";
    private readonly DirectoryInfo _log = Directory.CreateTempSubdirectory("twopc-early-vote-");
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(60) };
    private readonly List<string> _callbacks = [];
    private readonly string _newName = "early-new-" + Guid.NewGuid().ToString("N")[..8];
    private readonly string _oldName = "early-old-" + Guid.NewGuid().ToString("N")[..8];
    private readonly string _directName = "early-direct-" + Guid.NewGuid().ToString("N")[..8];
    private MeterListener _listener = null!;
    private WebApplication _coordinator = null!;
    private WebApplication _new = null!;
    private WebApplication _old = null!;
    private WebApplication _direct = null!;
    private TwoPCClient _client = null!;
    private string _newDb = string.Empty;
    private string _oldDb = string.Empty;
    private string _directDb = string.Empty;

    public async Task InitializeAsync()
    {
        _listener = ListenToCallbacks(_callbacks);
        var (newPort, oldPort, directPort) = (FreePort.OnLoopback(), FreePort.OnLoopback(), FreePort.OnLoopback());
        _coordinator = CoordinatorServer.BuildApp([
            "--Urls=http://127.0.0.1:0",
            $"--TwoPC:NodeId={CoordinatorProcess.NewNodeId()}",
            $"--TwoPC:LogDirectory={_log.FullName}",
            "--TwoPC:RetryMaxDelay=00:00:00.200",
            "--Coordinator:Authentication:AllowAnonymous=true",
            $"--Coordinator:Participants:{_newName}:CallbackUrl=http://127.0.0.1:{newPort}/twopc",
            $"--Coordinator:Participants:{_newName}:Key={NewKey}",
            $"--Coordinator:Participants:{_oldName}:CallbackUrl=http://127.0.0.1:{oldPort}/twopc",
            $"--Coordinator:Participants:{_oldName}:Key={OldKey}",
            $"--Coordinator:Participants:{_directName}:CallbackUrl=http://127.0.0.1:{directPort}/twopc",
            $"--Coordinator:Participants:{_directName}:Key={DirectKey}",
            "--Logging:LogLevel:Default=Warning",
        ]);
        await _coordinator.StartAsync();
        var coordinatorUrl = new Uri(_coordinator.Urls.First() + "/");
        _client = new TwoPCClient(new HttpClient { BaseAddress = coordinatorUrl });
        _newDb = await fixture.Server.CreateDatabaseAsync();
        _oldDb = await fixture.Server.CreateDatabaseAsync();
        _directDb = await fixture.Server.CreateDatabaseAsync();
        _new = await StartServiceAsync(_newDb, _newName, newPort, coordinatorUrl, NewKey, relay: true, report: false); // the defaults
        _old = await StartServiceAsync(_oldDb, _oldName, oldPort, coordinatorUrl, OldKey, relay: false, report: false);
        _direct = await StartServiceAsync(_directDb, _directName, directPort, coordinatorUrl, DirectKey, relay: false, report: true);
    }

    public async Task DisposeAsync()
    {
        _listener.Dispose();
        foreach (var app in new[] { _new, _old, _direct, _coordinator })
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }

        _client.Http.Dispose();
        _http.Dispose();
        _log.Delete(recursive: true);
    }

    [Fact]
    public async Task A_relayed_or_reported_yes_vote_spares_the_prepare_callback_and_an_older_participant_in_the_same_transaction_is_asked()
    {
        await using var tx = await _client.BeginAsync(TimeSpan.FromSeconds(30));
        using (var a = await SendAsync(_new, tx, "n-1"))
        using (var b = await SendAsync(_old, tx, "o-1"))
        using (var c = await SendAsync(_direct, tx, "d-1"))
        {
            Assert.Equal(HttpStatusCode.OK, a.StatusCode);
            Assert.Equal(HttpStatusCode.OK, b.StatusCode);
            Assert.Equal(HttpStatusCode.OK, c.StatusCode);
            Assert.True(a.Headers.Contains(TwoPCHeaders.PreparedVote));
            Assert.False(b.Headers.Contains(TwoPCHeaders.PreparedVote));
        }

        var outcome = await tx.CommitAsync(); // relays the new participant's signed vote

        Assert.Equal(OutcomeKindDto.Committed, outcome.Kind);
        Assert.Equal(1, await CountAsync(_newDb, "n-1"));
        Assert.Equal(1, await CountAsync(_oldDb, "o-1"));
        Assert.Equal(1, await CountAsync(_directDb, "d-1"));
        var calls = Snapshot();
        Assert.DoesNotContain(calls, c => c.StartsWith(_newName + " prepare:", StringComparison.Ordinal));
        Assert.DoesNotContain(calls, c => c.StartsWith(_directName + " prepare:", StringComparison.Ordinal));
        Assert.Contains($"{_newName} prepared-report:signed", calls);
        Assert.Contains($"{_directName} prepared-report:taken", calls);
        Assert.Contains($"{_oldName} prepare:Yes", calls);
        Assert.DoesNotContain(calls, c => c.StartsWith(_oldName + " prepared-report", StringComparison.Ordinal));
        foreach (var name in new[] { _newName, _oldName, _directName })
        {
            Assert.Contains($"{name} commit:Committed", calls);
        }
    }

    [Fact]
    public async Task A_signed_vote_the_caller_does_not_relay_changes_nothing_the_coordinator_asks_by_callback()
    {
        await using var tx = await _client.BeginAsync(TimeSpan.FromSeconds(30));
        using (var request = new HttpRequestMessage(HttpMethod.Post, new Uri(new Uri(_new.Urls.First() + "/"), "write")) { Content = JsonContent.Create(new Item("n-3")) })
        {
            request.Headers.TryAddWithoutValidation(TwoPCHeaders.TransactionId, tx.Id); // by hand: the answer's vote is not kept
            using var response = await _http.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.True(response.Headers.Contains(TwoPCHeaders.PreparedVote));
        }

        Assert.Equal(OutcomeKindDto.Committed, (await tx.CommitAsync()).Kind);
        Assert.Equal(1, await CountAsync(_newDb, "n-3"));
        Assert.Contains($"{_newName} prepare:Yes", Snapshot());
    }

    [Fact]
    public async Task A_branch_that_reported_its_yes_vote_is_still_rolled_back_when_another_branch_votes_no()
    {
        await using var tx = await _client.BeginAsync(TimeSpan.FromSeconds(30));
        using (var a = await SendAsync(_new, tx, "n-2"))
        using (var b = await SendAsync(_old, tx, "o-2", fail: true))
        {
            Assert.Equal(HttpStatusCode.OK, a.StatusCode);
            Assert.Equal(HttpStatusCode.UnprocessableEntity, b.StatusCode);
        }

        var outcome = await tx.CommitAsync();

        Assert.Equal(OutcomeKindDto.RolledBack, outcome.Kind);
        Assert.Equal(0, await CountAsync(_newDb, "n-2"));
        Assert.Equal(0, await PreparedAsync(_newDb));
        var calls = Snapshot();
        Assert.Contains($"{_newName} prepared-report:signed", calls);
        Assert.Contains($"{_newName} rollback:RolledBack", calls);
    }

    private static async Task<WebApplication> StartServiceAsync(string connectionString, string name, int port, Uri coordinatorUrl, string key, bool relay, bool report)
    {
        await OneParticipantService.CreateItemsTableAsync(connectionString);
        var app = OneParticipantService.Build(connectionString, name, port, coordinatorUrl, key, o =>
        {
            o.RelayPreparedVotes = relay;
            o.ReportPreparedVotes = report;
            o.RecoveryInterval = TimeSpan.FromHours(1);
        });
        app.MapPost("/write", async (Item item, RemoteBranch branch) =>
        {
            await branch.Connection.ExecuteAsync("INSERT INTO items (id) VALUES (@Id)", item, branch.Transaction);
            return item.Fail ? Results.UnprocessableEntity(new { error = "asked to fail" }) : Results.Ok();
        }).AsTwoPCBranch();
        await app.StartAsync();
        return app;
    }

    private async Task<HttpResponseMessage> SendAsync(WebApplication service, CoordinatorTransaction tx, string id, bool fail = false) =>
        await _http.PostInTransactionAsync(new Uri(new Uri(service.Urls.First() + "/"), "write").AbsoluteUri, new Item(id, fail), tx);

    private static async Task<long> CountAsync(string connectionString, string id)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        return await connection.ExecuteScalarAsync<long>("SELECT count(*) FROM items WHERE id = @id", new { id });
    }

    private static async Task<long> PreparedAsync(string connectionString)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        return await connection.ExecuteScalarAsync<long>("SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database()");
    }

    // "{participant} {action}:{answer}" for every callback served, and "{participant} prepared-report:{result}" for every early report.
    private static MeterListener ListenToCallbacks(List<string> calls)
    {
        var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Name is "twopc.remote.callbacks" or "twopc.remote.prepared_reports")
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((instrument, _, tags, _) =>
        {
            string? name = null, action = "prepared-report", answer = null;
            foreach (var tag in tags)
            {
                switch (tag.Key)
                {
                    case "twopc.resource_manager": name = tag.Value as string; break;
                    case "twopc.action": action = tag.Value as string; break;
                    case "twopc.answer" or "twopc.result": answer = tag.Value as string; break;
                }
            }

            lock (calls)
            {
                calls.Add($"{name} {action}:{answer}");
            }
        });
        listener.Start();
        return listener;
    }

    private List<string> Snapshot()
    {
        lock (_callbacks)
        {
            return [.. _callbacks];
        }
    }

    public sealed record Item(string Id, bool Fail = false);
}
