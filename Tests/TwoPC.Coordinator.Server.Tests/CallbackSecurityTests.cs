using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using TwoPC.Client;

namespace TwoPC.Coordinator.Server.Tests;

/// <summary>
/// Issue 12, items 1, 2, 6 and the participant-call side of 8 and 10: who the coordinator calls back, how, and how
/// much of an answer it keeps — each against a real coordinator on 127.0.0.1:0 and real listeners.
/// </summary>
public sealed class CallbackSecurityTests(Xunit.Abstractions.ITestOutputHelper output) : IAsyncLifetime
{
    private const string PaymentsKey = "payments-key-0123456789-abcdefghijklmnop";
    private const string ClosedKey = "closed-key-0123456789-abcdefghijklmnop";
    private readonly DirectoryInfo _log = Directory.CreateTempSubdirectory("twopc-callbacks-");
    private readonly List<WebApplication> _servers = [];

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var server in _servers)
        {
            using var shortly = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            try
            {
                await server.StopAsync(shortly.Token);
            }
            catch (OperationCanceledException)
            {
            }

            await server.DisposeAsync();
        }

        _log.Delete(recursive: true);
    }

    [Fact]
    public async Task Item01_an_attacker_registering_its_own_callback_url_gets_403_and_its_listener_receives_nothing()
    {
        await using var payments = await Listener.StartParticipantAsync();
        await using var attacker = await Listener.StartParticipantAsync();
        using var client = await StartCoordinatorAsync(ConfiguredPayments(payments));

        // An unconfigured name with the attacker's URL, and the configured name with the attacker's URL.
        var id = await BeginAsync(client);
        using var unconfigured = await RegisterAsync(client, id, "attacker", new Uri(attacker.BaseAddress, "steal"));
        await AssertProblemAsync(unconfigured, HttpStatusCode.Forbidden);
        using var impostor = await RegisterAsync(client, id, "payments", new Uri(attacker.BaseAddress, "steal"));
        await AssertProblemAsync(impostor, HttpStatusCode.Forbidden);

        // The legitimate registration still works, and the transaction commits without ever calling the attacker.
        using var legit = await RegisterAsync(client, id, "payments", new Uri(payments.BaseAddress, "twopc"));
        Assert.Equal(HttpStatusCode.Created, legit.StatusCode);
        using var commit = await client.PostAsync($"/transactions/{id}/commit", null);
        Assert.Equal("Committed", (await commit.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("kind").GetString());

        Assert.Empty(attacker.Requests);
        Assert.Equal(["/twopc/prepare", "/twopc/commit"], payments.Requests.Select(r => r.Path));
    }

    [Fact]
    public async Task Item01_callbacks_carry_a_signature_under_the_participants_own_key_and_never_a_key()
    {
        await using var payments = await Listener.StartParticipantAsync();
        using var client = await StartCoordinatorAsync(ConfiguredPayments(payments));
        var id = await BeginAsync(client);
        using var registered = await RegisterAsync(client, id, "payments", new Uri(payments.BaseAddress, "twopc"));
        Assert.Equal(HttpStatusCode.Created, registered.StatusCode);
        using var commit = await client.PostAsync($"/transactions/{id}/commit", null);
        Assert.Equal(HttpStatusCode.OK, commit.StatusCode);

        Assert.Equal(2, payments.Requests.Count);
        foreach (var request in payments.Requests)
        {
            Assert.DoesNotContain(request.Headers, h => h.Value.Contains(PaymentsKey, StringComparison.Ordinal));
            Assert.False(request.Headers.ContainsKey("TwoPC-Callback-Key"), "the old shared-key header was sent");
            Assert.Equal("payments", request.Headers[RequestSignature.KeyIdHeader]);
            var check = RequestSignature.Verify("payments", PaymentsKey, request.Method, request.Path, request.Headers[RequestSignature.TimestampHeader],
                request.Headers[RequestSignature.SignatureHeader], request.Body, DateTimeOffset.UtcNow, RequestSignature.DefaultClockSkew);
            Assert.Equal(SignatureCheck.Valid, check);

            // Useless for any other participant: the same signature does not verify under another participant's name or key.
            Assert.NotEqual(SignatureCheck.Valid, RequestSignature.Verify("orders", PaymentsKey, request.Method, request.Path, request.Headers[RequestSignature.TimestampHeader],
                request.Headers[RequestSignature.SignatureHeader], request.Body, DateTimeOffset.UtcNow, RequestSignature.DefaultClockSkew));
        }
    }

    [Fact]
    public async Task Item02_an_allowlisted_host_on_another_port_is_refused_and_the_listed_origin_accepted()
    {
        await using var allowed = await Listener.StartParticipantAsync();
        await using var otherPort = await Listener.StartParticipantAsync();
        using var client = await StartCoordinatorAsync([
            "--Coordinator:AllowUnconfiguredParticipants=true",
            $"--Coordinator:AllowedCallbackOrigins:0=http://127.0.0.1:{allowed.Port}",
        ]);

        var id = await BeginAsync(client);
        using var refused = await RegisterAsync(client, id, "dev-b", new Uri(otherPort.BaseAddress, "twopc"));
        await AssertProblemAsync(refused, HttpStatusCode.Forbidden);
        using var localhost = await RegisterAsync(client, id, "dev-c", new Uri($"http://localhost:{allowed.Port}/twopc"));
        await AssertProblemAsync(localhost, HttpStatusCode.Forbidden);
        using var accepted = await RegisterAsync(client, id, "dev-a", new Uri(allowed.BaseAddress, "twopc"));
        Assert.Equal(HttpStatusCode.Created, accepted.StatusCode);
        using var commit = await client.PostAsync($"/transactions/{id}/commit", null);
        Assert.Equal("Committed", (await commit.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("kind").GetString());

        Assert.Empty(otherPort.Requests);
        Assert.Equal(2, allowed.Requests.Count);
    }

    [Fact]
    public async Task Item02_a_307_from_a_participant_is_not_followed_and_the_reason_names_no_target()
    {
        await using var target = await Listener.StartParticipantAsync();
        await using var payments = await Listener.StartAsync((context, request) =>
        {
            context.Response.StatusCode = StatusCodes.Status307TemporaryRedirect;
            context.Response.Headers.Location = new Uri(target.BaseAddress, "twopc/prepare").AbsoluteUri;
            return Task.CompletedTask;
        });
        using var client = await StartCoordinatorAsync(ConfiguredPayments(payments));
        var id = await BeginAsync(client);
        using var registered = await RegisterAsync(client, id, "payments", new Uri(payments.BaseAddress, "twopc"));
        Assert.Equal(HttpStatusCode.Created, registered.StatusCode);

        using var commit = await client.PostAsync($"/transactions/{id}/commit", null);
        var outcome = await commit.Content.ReadFromJsonAsync<JsonElement>();

        Assert.Equal("RolledBack", outcome.GetProperty("kind").GetString());
        Assert.Empty(target.Requests);
        var reason = outcome.GetProperty("reason").GetString()!;
        Assert.Contains("redirect", reason, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("307", reason, StringComparison.Ordinal);
        Assert.DoesNotContain(target.Port.ToString(CultureInfo.InvariantCulture), reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Item01_an_outcome_reason_does_not_echo_the_targets_status_code_or_address()
    {
        await using var payments = await Listener.StartAsync((context, request) =>
        {
            context.Response.StatusCode = 418;
            return Task.CompletedTask;
        });
        var closedPort = ClosedPort();
        using var client = await StartCoordinatorAsync([
            .. ConfiguredPayments(payments),
            "--Coordinator:Participants:closed:CallbackUrl=http://127.0.0.1:" + closedPort + "/twopc",
            $"--Coordinator:Participants:closed:Key={ClosedKey}",
        ]);

        foreach (var (name, url, port) in new[] { ("payments", new Uri(payments.BaseAddress, "twopc"), payments.Port), ("closed", new Uri($"http://127.0.0.1:{closedPort}/twopc"), closedPort) })
        {
            var id = await BeginAsync(client);
            using var registered = await RegisterAsync(client, id, name, url);
            Assert.Equal(HttpStatusCode.Created, registered.StatusCode);
            using var commit = await client.PostAsync($"/transactions/{id}/commit", null);
            var text = await commit.Content.ReadAsStringAsync();
            Assert.Contains("RolledBack", text, StringComparison.Ordinal);
            Assert.DoesNotContain("418", text, StringComparison.Ordinal);
            Assert.DoesNotContain(port.ToString(CultureInfo.InvariantCulture), text, StringComparison.Ordinal);
            Assert.DoesNotContain("refused", text, StringComparison.OrdinalIgnoreCase);
            var status = await client.GetStringAsync($"/transactions/{id}");
            Assert.DoesNotContain(port.ToString(CultureInfo.InvariantCulture), status, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Item01_after_a_restart_a_configured_participant_is_called_at_its_configured_url_not_the_logged_one()
    {
        // First run (development mode): "payments" registers at L1 and its commit keeps failing; the decision is logged
        // with L1's URL. Second run: "payments" is configured at L2 with its key. Recovery must call L2, signed; never L1.
        await using var first = await Listener.StartAsync(async (context, request) =>
        {
            if (request.Path.EndsWith("/commit", StringComparison.Ordinal))
            {
                context.Response.StatusCode = 503;
                return;
            }

            await Listener.AnswerAsParticipantAsync(context, request);
        });
        await using var second = await Listener.StartParticipantAsync();
        var log = Path.Combine(_log.FullName, "restart");
        using (var client = await StartCoordinatorAsync([
            $"--TwoPC:LogDirectory={log}",
            "--Coordinator:AllowUnconfiguredParticipants=true",
            $"--Coordinator:AllowedCallbackOrigins:0=http://127.0.0.1:{first.Port}",
        ]))
        {
            var id = await BeginAsync(client);
            using var registered = await RegisterAsync(client, id, "payments", new Uri(first.BaseAddress, "twopc"), signed: false); // not configured yet
            Assert.Equal(HttpStatusCode.Created, registered.StatusCode);
            var commit = client.PostAsync($"/transactions/{id}/commit", null);
            await TwoPC.Testing.Eventually.TrueAsync(() => Task.FromResult(first.Requests.Any(r => r.Path == "/twopc/commit")), TimeSpan.FromSeconds(30));
            await StopLastAsync();
            await Assert.ThrowsAnyAsync<Exception>(() => commit);
        }

        var calledBefore = first.Requests.Count;
        using var restarted = await StartCoordinatorAsync([
            $"--TwoPC:LogDirectory={log}",
            $"--Coordinator:Participants:payments:CallbackUrl={new Uri(second.BaseAddress, "twopc")}",
            $"--Coordinator:Participants:payments:Key={PaymentsKey}",
        ]);

        await TwoPC.Testing.Eventually.TrueAsync(() => Task.FromResult(second.Requests.Any(r => r.Path == "/twopc/commit")), TimeSpan.FromSeconds(30));
        var redriven = second.Requests.First(r => r.Path == "/twopc/commit");
        Assert.Equal(SignatureCheck.Valid, RequestSignature.Verify("payments", PaymentsKey, redriven.Method, redriven.Path, redriven.Headers[RequestSignature.TimestampHeader],
            redriven.Headers[RequestSignature.SignatureHeader], redriven.Body, DateTimeOffset.UtcNow, RequestSignature.DefaultClockSkew));
        Assert.Equal(calledBefore, first.Requests.Count);
    }

    [Fact]
    public async Task Item02_after_a_restart_a_logged_url_of_an_unconfigured_participant_is_checked_against_todays_allowlist()
    {
        await using var first = await Listener.StartAsync(async (context, request) =>
        {
            if (request.Path.EndsWith("/commit", StringComparison.Ordinal))
            {
                context.Response.StatusCode = 503;
                return;
            }

            await Listener.AnswerAsParticipantAsync(context, request);
        });
        await using var allowedNow = await Listener.StartParticipantAsync();
        var log = Path.Combine(_log.FullName, "allowlist");
        string xid;
        using (var client = await StartCoordinatorAsync([
            $"--TwoPC:LogDirectory={log}",
            "--Coordinator:AllowUnconfiguredParticipants=true",
            $"--Coordinator:AllowedCallbackOrigins:0=http://127.0.0.1:{first.Port}",
        ]))
        {
            var id = await BeginAsync(client);
            using var registered = await RegisterAsync(client, id, "dev-x", new Uri(first.BaseAddress, "twopc"));
            xid = (await registered.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("xid").GetString()!;
            var commit = client.PostAsync($"/transactions/{id}/commit", null);
            await TwoPC.Testing.Eventually.TrueAsync(() => Task.FromResult(first.Requests.Any(r => r.Path == "/twopc/commit")), TimeSpan.FromSeconds(30));
            await StopLastAsync();
            await Assert.ThrowsAnyAsync<Exception>(() => commit);
        }

        // The origin is no longer allowed: the logged decision is re-driven, and every attempt is refused before sending.
        var calledBefore = first.Requests.Count;
        using var restarted = await StartCoordinatorAsync([
            $"--TwoPC:LogDirectory={log}",
            "--Admin:ApiKey=callbacks-admin-key",
            "--Coordinator:AllowUnconfiguredParticipants=true",
            $"--Coordinator:AllowedCallbackOrigins:0=http://127.0.0.1:{allowedNow.Port}",
        ]);
        await TwoPC.Testing.Eventually.TrueAsync(async () =>
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/admin/in-doubt");
            request.Headers.Add("X-Api-Key", "callbacks-admin-key");
            using var listed = await restarted.SendAsync(request);
            var text = await listed.Content.ReadAsStringAsync();
            return text.Contains(xid, StringComparison.Ordinal) && text.Contains("AllowedCallbackOrigins", StringComparison.Ordinal);
        }, TimeSpan.FromSeconds(30));
        Assert.Equal(calledBefore, first.Requests.Count);
        Assert.Empty(allowedNow.Requests);
    }

    [Theory]
    [InlineData("--Coordinator:Participants:payments:Key=change-me", "Coordinator:Participants:payments:Key")]
    [InlineData("--Coordinator:CallbackKey=some-long-shared-secret-0123456789abcdef", "Coordinator:Participants:{name}:Key")]
    [InlineData("--Coordinator:AllowedCallbackHosts:0=127.0.0.1", "AllowedCallbackOrigins")]
    [InlineData("--Coordinator:AllowedCallbackOrigins:0=http://127.0.0.1", "scheme://host:port")]
    [InlineData("--Coordinator:RemoteResourceManagers:0=ghost", "Coordinator:Participants:ghost")]
    public void Item06_the_coordinator_refuses_to_start_with_a_placeholder_key_or_a_replaced_setting(string setting, string named)
    {
        var error = Assert.ThrowsAny<InvalidOperationException>(() => CoordinatorServer.BuildApp([
            "--Urls=http://127.0.0.1:0",
            $"--TwoPC:LogDirectory={_log.FullName}",
            "--Coordinator:Participants:payments:CallbackUrl=http://127.0.0.1:1/twopc",
            setting.Contains("payments:Key", StringComparison.Ordinal) ? "--Logging:LogLevel:Default=Warning" : $"--Coordinator:Participants:payments:Key={PaymentsKey}",
            setting,
        ]));
        Assert.Contains(named, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Item08_concurrent_calls_to_participants_are_bounded_by_the_configured_limit()
    {
        var current = 0;
        var highest = 0;
        await using var participant = await Listener.StartAsync(async (context, request) =>
        {
            var now = Interlocked.Increment(ref current);
            InterlockedMax(ref highest, now);
            await Task.Delay(TimeSpan.FromMilliseconds(100));
            Interlocked.Decrement(ref current);
            await Listener.AnswerAsParticipantAsync(context, request);
        });
        using var client = await StartCoordinatorAsync([
            "--Coordinator:AllowUnconfiguredParticipants=true",
            $"--Coordinator:AllowedCallbackOrigins:0=http://127.0.0.1:{participant.Port}",
            "--Coordinator:Limits:MaxConcurrentParticipantCalls=3",
            "--Coordinator:Limits:MaxParticipantConnectionsPerServer=8",
        ]);

        var id = await BeginAsync(client);
        for (var i = 0; i < 16; i++)
        {
            using var registered = await RegisterAsync(client, id, $"fan-{i}", new Uri(participant.BaseAddress, $"p{i}"));
            Assert.Equal(HttpStatusCode.Created, registered.StatusCode);
        }

        using var commit = await client.PostAsync($"/transactions/{id}/commit", null);
        Assert.Equal("Committed", (await commit.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("kind").GetString());
        Assert.Equal(32, participant.Requests.Count);
        output.WriteLine($"at most {highest} participant calls ran at once (limit 3) for 16 branches");
        Assert.True(highest <= 3, $"{highest} participant calls ran at once; the limit is 3");

        // The service still serves the next request.
        Assert.Equal(HttpStatusCode.Created, (await client.PostAsync("/transactions", null)).StatusCode);
    }

    [Fact]
    public async Task Item10_a_participants_huge_answer_is_not_read_past_64_KiB_nor_kept()
    {
        // A raw socket participant (Kestrel silently drops writes to a closed connection, a socket does not): its prepare
        // answer is a vote whose reason is 100 MB, without a length. Every byte it managed to send is counted.
        const long Huge = 100L * 1024 * 1024;
        long sent = 0;
        using var socket = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        socket.Start();
        var port = ((IPEndPoint)socket.LocalEndpoint).Port;
        using var stop = new CancellationTokenSource();
        var serving = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                using var connection = await socket.AcceptTcpClientAsync(stop.Token);
                var stream = connection.GetStream();
                var head = await ReadRequestHeadAsync(stream, stop.Token);
                try
                {
                    if (!head.StartsWith("POST /twopc/prepare ", StringComparison.Ordinal))
                    {
                        var answer = Encoding.ASCII.GetBytes("{\"outcome\":\"rolledBack\"}");
                        await stream.WriteAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {answer.Length}\r\nConnection: close\r\n\r\n"), stop.Token);
                        await stream.WriteAsync(answer, stop.Token);
                        continue;
                    }

                    await stream.WriteAsync(Encoding.ASCII.GetBytes("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{\"vote\":\"no\",\"reason\":\""), stop.Token);
                    var chunk = Encoding.ASCII.GetBytes(new string('x', 64 * 1024));
                    while (Interlocked.Read(ref sent) < Huge)
                    {
                        await stream.WriteAsync(chunk, stop.Token);
                        Interlocked.Add(ref sent, chunk.Length);
                    }
                }
                catch (Exception ex) when (ex is IOException or System.Net.Sockets.SocketException or OperationCanceledException)
                {
                    // The coordinator hung up: what it should do.
                }
            }
        });

        var callbackUrl = new Uri($"http://127.0.0.1:{port}/twopc");
        using var client = await StartCoordinatorAsync([
            $"--Coordinator:Participants:payments:CallbackUrl={callbackUrl}",
            $"--Coordinator:Participants:payments:Key={PaymentsKey}",
        ]);
        var id = await BeginAsync(client);
        using var registered = await RegisterAsync(client, id, "payments", callbackUrl);
        Assert.Equal(HttpStatusCode.Created, registered.StatusCode);

        using var commit = await client.PostAsync($"/transactions/{id}/commit", null);
        var answer = await commit.Content.ReadAsStringAsync();
        var status = await client.GetStringAsync($"/transactions/{id}");
        await stop.CancelAsync();
        socket.Stop();
        await Task.WhenAny(serving, Task.Delay(TimeSpan.FromSeconds(5)));

        output.WriteLine($"the participant sent {Interlocked.Read(ref sent) / 1024} KiB of its {Huge / 1024 / 1024} MiB answer before the coordinator hung up; commit answer {answer.Length} chars, status {status.Length} chars");
        Assert.Contains("RolledBack", answer, StringComparison.Ordinal);
        Assert.Contains("64 KiB", answer, StringComparison.Ordinal);
        Assert.True(answer.Length < 4096, $"the commit answer is {answer.Length} characters");
        Assert.True(status.Length < 4096, $"the status answer is {status.Length} characters");
        Assert.True(Interlocked.Read(ref sent) < Huge, $"the participant sent all {Huge} bytes: the coordinator read the whole answer");

        // The service still serves the next request.
        Assert.Equal(HttpStatusCode.Created, (await client.PostAsync("/transactions", null)).StatusCode);
    }

    private static async Task<string> ReadRequestHeadAsync(Stream stream, CancellationToken cancellationToken)
    {
        // The request line and headers, then the body by its Content-Length (the coordinator sends one).
        var bytes = new List<byte>();
        var one = new byte[1];
        while (bytes.Count < 4 || !(bytes[^4] == '\r' && bytes[^3] == '\n' && bytes[^2] == '\r' && bytes[^1] == '\n'))
        {
            if (await stream.ReadAsync(one, cancellationToken) == 0)
            {
                break;
            }

            bytes.Add(one[0]);
        }

        var head = Encoding.ASCII.GetString([.. bytes]);
        var length = head.Split("\r\n").Select(l => l.Split(':', 2)).Where(p => p.Length == 2 && p[0].Trim().Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
            .Select(p => int.Parse(p[1].Trim(), CultureInfo.InvariantCulture)).FirstOrDefault();
        await stream.ReadExactlyAsync(new byte[length], cancellationToken);
        return head;
    }

    private static int ClosedPort()
    {
        using var socket = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        socket.Start();
        var port = ((IPEndPoint)socket.LocalEndpoint).Port;
        socket.Stop();
        return port;
    }

    private static void InterlockedMax(ref int target, int value)
    {
        int seen;
        while ((seen = Volatile.Read(ref target)) < value && Interlocked.CompareExchange(ref target, value, seen) != seen)
        {
        }
    }

    private static string[] ConfiguredPayments(Listener payments) =>
    [
        $"--Coordinator:Participants:payments:CallbackUrl={new Uri(payments.BaseAddress, "twopc")}",
        $"--Coordinator:Participants:payments:Key={PaymentsKey}",
    ];

    private async Task StopLastAsync()
    {
        var app = _servers[^1];
        _servers.RemoveAt(_servers.Count - 1);
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

    private async Task<HttpClient> StartCoordinatorAsync(string[] settings)
    {
        var app = CoordinatorServer.BuildApp([
            "--Urls=http://127.0.0.1:0",
            "--TwoPC:NodeId=callbacks-test",
            $"--TwoPC:LogDirectory={Path.Combine(_log.FullName, _servers.Count.ToString(CultureInfo.InvariantCulture))}",
            "--TwoPC:RetryMaxDelay=00:00:00.200",
            "--TwoPC:RollbackAttempts=2",
            "--Coordinator:ParticipantCallTimeout=00:00:05",
            "--Coordinator:Authentication:AllowAnonymous=true",
            "--Logging:LogLevel:Default=Warning",
            .. settings,
        ]);
        _servers.Add(app);
        await app.StartAsync();
        return new HttpClient { BaseAddress = new Uri(ServerFixture.BoundAddress(app)), Timeout = TimeSpan.FromSeconds(60) };
    }

    private static async Task<string> BeginAsync(HttpClient client)
    {
        using var response = await client.PostAsJsonAsync("/transactions", new { timeoutSeconds = 30 });
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
    }

    // A configured participant registers with a request signed with its own key (an anonymous caller may not use its
    // name); the development-mode names have no key and register anonymously.
    private static async Task<HttpResponseMessage> RegisterAsync(HttpClient client, string id, string name, Uri callbackUrl, bool signed = true)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(client.BaseAddress!, $"/transactions/{id}/branches"))
        {
            Content = JsonContent.Create(new { resourceManager = name, callbackUrl = callbackUrl.AbsoluteUri }),
        };
        if (signed && ParticipantKeys.TryGetValue(name, out var key))
        {
            await RequestSignature.SignAsync(request, name, key, DateTimeOffset.UtcNow, CancellationToken.None);
        }

        return await client.SendAsync(request);
    }

    private static readonly Dictionary<string, string> ParticipantKeys = new(StringComparer.Ordinal)
    {
        ["payments"] = PaymentsKey,
        ["closed"] = ClosedKey,
    };

    private static async Task AssertProblemAsync(HttpResponseMessage response, HttpStatusCode status)
    {
        Assert.True(status == response.StatusCode, $"expected {(int)status}, got {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }
}
