using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using Dapper;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using TwoPC.Client;
using TwoPC.Coordinator.Server;
using TwoPC.TestServers.Internal;
using TwoPC.Transactions;

namespace TwoPC.Participants.Remote.Tests;

/// <summary>
/// Issue 12, items 3 and 4, on the participant side: a real coordinator and a participant service on loopback over a
/// real PostgreSQL database. Only the coordinator, signing under this participant's own key, can prepare, commit or
/// roll back; and even it only for TwoPC branches of its node that this participant tracks or has prepared.
/// </summary>
[Collection(RemoteCollection.Name)]
public sealed class ParticipantSecurityTests(RemoteFixture fixture) : IAsyncLifetime
{
    private const string Name = "sec-service";
    private const string Key = "sec-service-key-0123456789-abcdefghijklmnopq";
    private const string OrdersKey = "orders-key-0123456789-abcdefghijklmnopqrstu";
    private const string Node = "sec-test";
    private readonly DirectoryInfo _log = Directory.CreateTempSubdirectory("twopc-sec-log-");
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(60) };
    private readonly ConcurrentQueue<string> _logged = new();
    private WebApplication _coordinator = null!;
    private WebApplication _service = null!;
    private string _connectionString = string.Empty;
    private Uri _serviceUrl = null!;
    private Uri _coordinatorUrl = null!;
    private TwoPCClient _client = null!;

    public async Task InitializeAsync()
    {
        var port = FreePort.OnLoopback();
        _coordinator = await OneParticipantCoordinator.StartAsync(Node, Name, port, Key, _log.FullName);
        _coordinatorUrl = new Uri(_coordinator.Urls.First() + "/");
        _client = new TwoPCClient(new HttpClient { BaseAddress = _coordinatorUrl });
        _connectionString = await fixture.Server.CreateDatabaseAsync();
        await using (var connection = new NpgsqlConnection(_connectionString))
        {
            await connection.ExecuteAsync("CREATE TABLE items (id text PRIMARY KEY)");
        }

        _service = BuildService(_coordinatorUrl, port, new() { ["Key"] = Key });
        await _service.StartAsync();
        _serviceUrl = new Uri(_service.Urls.First() + "/");
    }

    public async Task DisposeAsync()
    {
        await _service.StopAsync();
        await _service.DisposeAsync();
        await _coordinator.StopAsync();
        await _coordinator.DisposeAsync();
        _client.Http.Dispose();
        _http.Dispose();
        _log.Delete(recursive: true);
    }

    [Fact]
    public async Task Item03_forged_unsigned_expired_replayed_elsewhere_or_other_participant_signed_callbacks_get_401_and_the_branch_stays_prepared()
    {
        await using var tx = await _client.BeginAsync();
        using var written = await SendAsync("write", tx.Id, new { id = "f-1" });
        Assert.Equal(HttpStatusCode.OK, written.StatusCode);
        var xid = (await _client.GetStatusAsync(tx.Id)).Branches!.Single().Xid;
        var now = DateTimeOffset.UtcNow;

        foreach (var action in new[] { "commit", "rollback", "prepare" })
        {
            var attempts = new (string What, Func<HttpRequestMessage, Task> Sign)[]
            {
                ("unsigned", _ => Task.CompletedTask),
                ("the key itself in the old header", r => { r.Headers.Add("TwoPC-Callback-Key", Key); return Task.CompletedTask; }),
                ("a wrong key", r => RequestSignature.SignAsync(r, Name, "not-the-key-0123456789-abcdefghijklmnopqrstu", now, default)),
                ("expired", r => RequestSignature.SignAsync(r, Name, Key, now.AddMinutes(-10), default)),
                ("another participant's key", r => RequestSignature.SignAsync(r, "orders", OrdersKey, now, default)),
                ("this participant's name and another's key", r => RequestSignature.SignAsync(r, Name, OrdersKey, now, default)),
            };
            foreach (var (what, sign) in attempts)
            {
                using var request = Callback(action, xid);
                await sign(request);
                using var forged = await _http.SendAsync(request);
                Assert.True(forged.StatusCode == HttpStatusCode.Unauthorized, $"{action} {what}: {(int)forged.StatusCode} {await forged.Content.ReadAsStringAsync()}");
                Assert.Equal("application/problem+json", forged.Content.Headers.ContentType?.MediaType);
            }

            // A valid signature of one call replayed as another (a rollback's signature on a commit) is refused too.
            using var signedRollback = Callback("rollback", xid);
            await RequestSignature.SignAsync(signedRollback, Name, Key, now, default);
            using var replayed = Callback(action == "rollback" ? "commit" : action, xid);
            foreach (var header in new[] { RequestSignature.KeyIdHeader, RequestSignature.TimestampHeader, RequestSignature.SignatureHeader })
            {
                replayed.Headers.Add(header, signedRollback.Headers.GetValues(header));
            }

            using var replayAnswer = await _http.SendAsync(replayed);
            Assert.Equal(HttpStatusCode.Unauthorized, replayAnswer.StatusCode);
        }

        Assert.Equal(1, await PreparedAsync()); // untouched by every forged call
        Assert.Equal(0, await CountAsync("f-1"));
        Assert.Equal(OutcomeKindDto.Committed, (await tx.CommitAsync()).Kind); // the coordinator signs
        Assert.Equal(1, await CountAsync("f-1"));
    }

    [Fact]
    public async Task Item03_the_participants_calls_to_the_coordinator_are_signed_with_its_key()
    {
        await using var coordinator = await StartRecorderAsync();
        var service = BuildService(coordinator.Url, FreePort.OnLoopback(), new() { ["Key"] = Key });
        await service.StartAsync();
        try
        {
            var participant = service.Services.GetRequiredService<RemoteParticipant>();
            await Assert.ThrowsAsync<RemoteParticipantException>(() => participant.JoinAsync("sec-test.1.1"));
        }
        finally
        {
            await service.StopAsync();
            await service.DisposeAsync();
        }

        var registration = coordinator.Requests.First(r => r.Path.EndsWith("/branches", StringComparison.Ordinal));
        Assert.DoesNotContain(registration.Headers, h => h.Value.Contains(Key, StringComparison.Ordinal));
        Assert.Equal(SignatureCheck.Valid, RequestSignature.Verify(Name, Key, registration.Method, registration.Path, registration.Header(RequestSignature.TimestampHeader),
            registration.Header(RequestSignature.SignatureHeader), registration.Body, DateTimeOffset.UtcNow, RequestSignature.DefaultClockSkew));
    }

    [Fact]
    public async Task Item03_a_participant_without_a_key_refuses_to_start_naming_the_setting()
    {
        var app = BuildService(_coordinatorUrl, FreePort.OnLoopback(), []);
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => app.StartAsync());
        Assert.Contains("TwoPC:Participant:Key", error.Message, StringComparison.Ordinal);
        Assert.Contains("AllowUnauthenticatedCallbacks", error.Message, StringComparison.Ordinal);
        await app.DisposeAsync();

        var placeholder = BuildService(_coordinatorUrl, FreePort.OnLoopback(), new() { ["Key"] = "change-me" });
        var refused = await Assert.ThrowsAsync<OptionsValidationException>(() => placeholder.StartAsync());
        Assert.Contains("placeholder", refused.Message, StringComparison.Ordinal);
        await placeholder.DisposeAsync();
    }

    [Fact]
    public async Task Item03_the_old_CallbackKey_setting_is_refused_with_a_message_saying_to_rename_it()
    {
        var app = BuildService(_coordinatorUrl, FreePort.OnLoopback(), new() { ["CallbackKey"] = Key });
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => app.StartAsync());
        Assert.Contains("TwoPC:Participant:CallbackKey", error.Message, StringComparison.Ordinal);
        Assert.Contains("TwoPC:Participant:Key", error.Message, StringComparison.Ordinal);
        await app.DisposeAsync();
    }

    [Fact]
    public async Task Item03_with_AllowUnauthenticatedCallbacks_a_participant_without_a_key_starts_and_warns()
    {
        var app = BuildService(_coordinatorUrl, FreePort.OnLoopback(), new() { ["AllowUnauthenticatedCallbacks"] = "true" });
        await app.StartAsync();
        try
        {
            Assert.Contains(_logged, line => line.StartsWith("Warning", StringComparison.Ordinal) && line.Contains("AllowUnauthenticatedCallbacks", StringComparison.Ordinal));
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }
    }

    [Fact]
    public async Task Item04_a_commit_of_a_gid_that_is_not_this_participants_is_404_or_409_and_commits_nothing()
    {
        var otherDatabase = await fixture.Server.CreateDatabaseAsync();
        var ownNodeElsewhere = Xid.ForBranch(new GlobalTransactionId(NodeId.Parse(Node), 0xbeef, 7), 1).ToString();
        var otherNode = Xid.ForBranch(new GlobalTransactionId(NodeId.Parse("other-node"), 0xbeef, 7), 1).ToString();
        var neverSeen = Xid.ForBranch(new GlobalTransactionId(NodeId.Parse(Node), 0xbeef, 8), 1).ToString();
        const string NotTwoPC = "00000001_otherapp_1";
        await PrepareByHandAsync(_connectionString, NotTwoPC, "foreign-1");
        await PrepareByHandAsync(_connectionString, otherNode, "foreign-2");
        await PrepareByHandAsync(otherDatabase, ownNodeElsewhere, "foreign-3");
        try
        {
            foreach (var action in new[] { "commit", "prepare", "rollback" })
            {
                foreach (var gid in new[] { NotTwoPC, otherNode, ownNodeElsewhere, neverSeen })
                {
                    if (action == "rollback" && (gid == neverSeen || gid == ownNodeElsewhere))
                    {
                        continue; // a branch of its own coordinator with nothing prepared here: answered rolled back, untouched (below)
                    }

                    using var request = Callback(action, gid);
                    await RequestSignature.SignAsync(request, Name, Key, DateTimeOffset.UtcNow, default);
                    using var answer = await _http.SendAsync(request);
                    var body = await answer.Content.ReadAsStringAsync();
                    Assert.True(answer.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.Conflict, $"{action} {gid}: {(int)answer.StatusCode} {body}");
                    Assert.Equal("application/problem+json", answer.Content.Headers.ContentType?.MediaType);
                }
            }

            foreach (var gid in new[] { neverSeen, ownNodeElsewhere })
            {
                // Presumed abort as far as this database goes: nothing of it is prepared here, and nothing is touched.
                using var request = Callback("rollback", gid);
                await RequestSignature.SignAsync(request, Name, Key, DateTimeOffset.UtcNow, default);
                using var answer = await _http.SendAsync(request);
                Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
                Assert.Equal(CallbackOutcome.RolledBack, (await answer.Content.ReadFromJsonAsync<FinishCallbackResponse>(TwoPCJson.Options))!.Outcome);
            }

            Assert.Equal(2, await PreparedAsync()); // nothing committed or rolled back here
            Assert.Equal(0, await CountAsync("foreign-1"));
            Assert.Equal(0, await CountAsync("foreign-2"));
            Assert.Equal(1, await PreparedAsync(otherDatabase));
        }
        finally
        {
            await FinishByHandAsync(_connectionString, NotTwoPC);
            await FinishByHandAsync(_connectionString, otherNode);
            await FinishByHandAsync(otherDatabase, ownNodeElsewhere);
        }
    }

    [Fact]
    public async Task Item04_a_repeated_commit_or_rollback_of_a_branch_it_finished_still_answers_exactly()
    {
        await using var tx = await _client.BeginAsync();
        using var written = await SendAsync("write", tx.Id, new { id = "r-1" });
        Assert.Equal(HttpStatusCode.OK, written.StatusCode);
        var xid = (await _client.GetStatusAsync(tx.Id)).Branches!.Single().Xid;
        Assert.Equal(OutcomeKindDto.Committed, (await tx.CommitAsync()).Kind);

        using var again = Callback("commit", xid);
        await RequestSignature.SignAsync(again, Name, Key, DateTimeOffset.UtcNow, default);
        using var answer = await _http.SendAsync(again);
        Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
        Assert.Equal(CallbackOutcome.Committed, (await answer.Content.ReadFromJsonAsync<FinishCallbackResponse>(TwoPCJson.Options))!.Outcome);

        await using var rolledBack = await _client.BeginAsync();
        using var second = await SendAsync("write", rolledBack.Id, new { id = "r-2" });
        var xid2 = (await _client.GetStatusAsync(rolledBack.Id)).Branches!.Single().Xid;
        Assert.Equal(OutcomeKindDto.RolledBack, (await rolledBack.RollbackAsync()).Kind);
        using var rollbackAgain = Callback("rollback", xid2);
        await RequestSignature.SignAsync(rollbackAgain, Name, Key, DateTimeOffset.UtcNow, default);
        using var rollbackAnswer = await _http.SendAsync(rollbackAgain);
        Assert.Equal(HttpStatusCode.OK, rollbackAnswer.StatusCode);
        Assert.Equal(CallbackOutcome.RolledBack, (await rollbackAnswer.Content.ReadFromJsonAsync<FinishCallbackResponse>(TwoPCJson.Options))!.Outcome);
        Assert.Equal(1, await CountAsync("r-1"));
        Assert.Equal(0, await CountAsync("r-2"));
    }

    private HttpRequestMessage Callback(string action, string xid) =>
        new(HttpMethod.Post, new Uri(_serviceUrl, "twopc/" + action)) { Content = new ByteArrayContent(Encoding.UTF8.GetBytes($"{{\"xid\":\"{xid}\"}}")) { Headers = { ContentType = new("application/json") } } };

    private WebApplication BuildService(Uri coordinatorUrl, int port, Dictionary<string, string?> settings)
    {
        var builder = WebApplication.CreateBuilder();
        builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
        builder.Logging.ClearProviders();
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.Logging.AddProvider(new RecordingLoggerProvider(_logged));
        builder.Services.AddSingleton(_ => NpgsqlDataSource.Create(_connectionString));
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>(settings)
        {
            ["Name"] = Name,
            ["CoordinatorUrl"] = coordinatorUrl.AbsoluteUri,
            ["CallbackUrl"] = $"http://127.0.0.1:{port}/twopc",
            ["RecoveryInterval"] = "01:00:00",
        }).Build();
        builder.Services.AddTwoPCRemoteParticipant(sp => sp.GetRequiredService<NpgsqlDataSource>(), configuration);
        var app = builder.Build();
        app.MapTwoPCParticipant();
        app.MapPost("/write", async (Item item, RemoteBranch branch) =>
        {
            await branch.Connection.ExecuteAsync("INSERT INTO items (id) VALUES (@Id)", item, branch.Transaction);
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

    private static async Task PrepareByHandAsync(string connectionString, string gid, string id)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await connection.ExecuteAsync("CREATE TABLE IF NOT EXISTS items (id text PRIMARY KEY)");
        await connection.ExecuteAsync($"BEGIN; INSERT INTO items (id) VALUES ('{id}'); PREPARE TRANSACTION '{gid}'");
    }

    private static async Task FinishByHandAsync(string connectionString, string gid)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        if (await connection.ExecuteScalarAsync<long>("SELECT count(*) FROM pg_prepared_xacts WHERE gid = @gid AND database = current_database()", new { gid }) > 0)
        {
            await connection.ExecuteAsync($"ROLLBACK PREPARED '{gid}'");
        }
    }

    private async Task<long> CountAsync(string id)
    {
        await using var connection = new NpgsqlConnection(_connectionString);
        return await connection.ExecuteScalarAsync<long>("SELECT count(*) FROM items WHERE id = @id", new { id });
    }

    private Task<long> PreparedAsync() => PreparedAsync(_connectionString);

    private static async Task<long> PreparedAsync(string connectionString)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        return await connection.ExecuteScalarAsync<long>("SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database()");
    }

    /// <summary>A stand-in coordinator that records requests and answers 404 (unknown transaction).</summary>
    private static async Task<Recorder> StartRecorderAsync()
    {
        var builder = WebApplication.CreateBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        var app = builder.Build();
        var recorder = new Recorder(app);
        app.Run(async context =>
        {
            using var body = new MemoryStream();
            await context.Request.Body.CopyToAsync(body);
            recorder.Requests.Enqueue(new RecordedRequest(context.Request.Method, context.Request.Path.Value ?? string.Empty,
                context.Request.Headers.ToDictionary(h => h.Key, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase), body.ToArray()));
            await Results.Problem(statusCode: 404, title: "Unknown transaction").ExecuteAsync(context);
        });
        await app.StartAsync();
        recorder.Url = new Uri(app.Urls.First() + "/");
        return recorder;
    }

    private sealed class Recorder(WebApplication app) : IAsyncDisposable
    {
        public ConcurrentQueue<RecordedRequest> Requests { get; } = new();

        public Uri Url { get; set; } = null!;

        public async ValueTask DisposeAsync()
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }
    }

    private sealed record RecordedRequest(string Method, string Path, Dictionary<string, string> Headers, byte[] Body)
    {
        public string? Header(string name) => Headers.TryGetValue(name, out var value) ? value : null;
    }

    private sealed class RecordingLoggerProvider(ConcurrentQueue<string> lines) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new RecordingLogger(lines);

        public void Dispose()
        {
        }

        private sealed class RecordingLogger(ConcurrentQueue<string> lines) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                lines.Enqueue($"{logLevel} {formatter(state, exception)}");
        }
    }

    public sealed record Item(string Id);
}
