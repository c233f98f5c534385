using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using TwoPC.Testing;

namespace TwoPC.Coordinator.Server.Tests;

/// <summary>
/// Issue 12, resource limits: one client must not take the service down. Each test runs the coordinator as a separate
/// process (a limit that does not hold would take the process, not the test host, down) and asserts the limit is
/// answered with its status while the process stays up and serves the next request.
/// </summary>
public sealed class LimitsTests
{
    [Fact]
    public async Task Item07_idle_connections_beyond_MaxConcurrentConnections_are_closed_and_the_server_serves_once_they_go()
    {
        const int cap = 50;
        const int opened = 400;
        await using var server = await ServerProcess.StartAsync([$"--Coordinator:Limits:MaxConcurrentConnections={cap}", "--Coordinator:Limits:KeepAliveTimeout=00:05:00"]);
        var sockets = new List<Socket>(opened);
        try
        {
            for (var i = 0; i < opened; i++)
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                sockets.Add(socket);
                await socket.ConnectAsync(IPAddress.Loopback, server.Port);
            }

            // The server closes every connection beyond its cap at once (end of stream or reset); the others stay idle.
            var closed = 0;
            await Eventually.TrueAsync(() => (closed = sockets.Count(IsClosedByPeer)) >= opened - cap, TimeSpan.FromSeconds(20),
                () => $"{closed} of {opened} idle connections closed by the server; expected at least {opened - cap} (cap {cap}).\n{server.Process.Describe()}");
            Assert.InRange(opened - sockets.Count(IsClosedByPeer), 0, cap);
            Assert.True(server.IsRunning, server.Process.Describe());
        }
        finally
        {
            foreach (var socket in sockets)
            {
                socket.Dispose();
            }
        }

        // Once the idle connections are gone, the next client is served.
        await Eventually.TrueAsync(async () =>
        {
            using var fresh = new HttpClient { BaseAddress = server.Url, Timeout = TimeSpan.FromSeconds(5) };
            using var begin = await fresh.PostAsJsonAsync("/transactions", new { timeoutSeconds = 30 });
            return begin.StatusCode == HttpStatusCode.Created;
        }, TimeSpan.FromSeconds(30), server.Process.Describe);
        Assert.True(server.IsRunning, server.Process.Describe());
    }

    [Fact]
    public async Task Item07_a_connection_that_never_finishes_its_headers_is_closed_after_RequestHeadersTimeout()
    {
        await using var server = await ServerProcess.StartAsync(["--Coordinator:Limits:RequestHeadersTimeout=00:00:02"]);
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, server.Port);
        var stream = client.GetStream();
        await stream.WriteAsync("GET /health HTTP/1.1\r\nHost: limits\r\n"u8.ToArray());

        // Kestrel's default is 30 s; with the setting the server gives up on the headers long before the test's patience ends.
        using var patience = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        var buffer = new byte[4096];
        var answer = new StringBuilder();
        try
        {
            int read;
            while ((read = await stream.ReadAsync(buffer, patience.Token)) > 0)
            {
                answer.Append(Encoding.ASCII.GetString(buffer, 0, read));
            }
        }
        catch (IOException)
        {
            // A reset is a close too.
        }
        catch (OperationCanceledException)
        {
            Assert.Fail("The server still held a connection with unfinished headers after 15 s (RequestHeadersTimeout 2 s).\n" + server.Process.Describe());
        }

        Assert.DoesNotContain("200 OK", answer.ToString(), StringComparison.Ordinal);
        using var health = await server.Http.GetAsync("/health");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
    }

    [Fact]
    public async Task Item08_a_branch_beyond_MaxBranchesPerTransaction_is_a_422_problem_and_the_transaction_still_rolls_back()
    {
        await using var participants = new Participants();
        await participants.StartAsync();
        await using var server = await ServerProcess.StartAsync(["--Coordinator:Limits:MaxBranchesPerTransaction=5", .. ServerFixture.DevelopmentParticipants(participants.BaseAddress)]);
        var id = await BeginAsync(server.Http);
        for (var i = 0; i < 5; i++)
        {
            using var ok = await server.Http.PostAsJsonAsync($"/transactions/{id}/branches", new { resourceManager = $"cap-{i}", callbackUrl = participants.CallbackUrl($"cap-{i}") });
            Assert.Equal(HttpStatusCode.Created, ok.StatusCode);
        }

        using var refused = await server.Http.PostAsJsonAsync($"/transactions/{id}/branches", new { resourceManager = "cap-5", callbackUrl = participants.CallbackUrl("cap-5") });
        var problem = await AssertProblemAsync(refused, HttpStatusCode.UnprocessableEntity);
        Assert.Contains("5", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);

        // The refused branch was never enlisted: rollback reaches exactly the five, and the process serves on.
        using var rollback = await server.Http.PostAsync($"/transactions/{id}/rollback", null);
        Assert.Equal(HttpStatusCode.OK, rollback.StatusCode);
        var outcome = await rollback.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("RolledBack", outcome.GetProperty("kind").GetString());
        Assert.Equal(5, outcome.GetProperty("branches").GetArrayLength());
        Assert.DoesNotContain(participants.Calls, c => c.StartsWith("cap-5 ", StringComparison.Ordinal));
        Assert.True(server.IsRunning, server.Process.Describe());
    }

    [Fact]
    public async Task Item09_begins_beyond_MaxLiveTransactions_are_503_with_RetryAfter_until_one_ends()
    {
        await using var server = await ServerProcess.StartAsync(["--Coordinator:Limits:MaxLiveTransactions=20", "--Coordinator:Limits:MaxLiveTransactionsPerClient=20"]);
        var ids = new List<string>();
        for (var i = 0; i < 20; i++)
        {
            ids.Add(await BeginAsync(server.Http));
        }

        using (var refused = await server.Http.PostAsJsonAsync("/transactions", new { timeoutSeconds = 300 }))
        {
            await AssertProblemAsync(refused, HttpStatusCode.ServiceUnavailable);
            Assert.True(refused.Headers.RetryAfter?.Delta > TimeSpan.Zero, $"Retry-After: {refused.Headers.RetryAfter}");
        }

        using (var rollback = await server.Http.PostAsync($"/transactions/{ids[0]}/rollback", null))
        {
            Assert.Equal(HttpStatusCode.OK, rollback.StatusCode);
        }

        await BeginAsync(server.Http);
        Assert.True(server.IsRunning, server.Process.Describe());
    }

    [Fact]
    public async Task Item09_abandoned_begins_free_their_slot_at_their_deadline()
    {
        await using var server = await ServerProcess.StartAsync(["--Coordinator:Limits:MaxLiveTransactions=10", "--Coordinator:Limits:MaxLiveTransactionsPerClient=10"]);
        for (var i = 0; i < 10; i++)
        {
            await BeginAsync(server.Http, timeoutSeconds: 1);
        }

        using (var refused = await server.Http.PostAsJsonAsync("/transactions", new { timeoutSeconds = 1 }))
        {
            await AssertProblemAsync(refused, HttpStatusCode.ServiceUnavailable);
        }

        // The reaper rolls the abandoned ones back at their deadline; their slots come back without anyone ending them.
        await Eventually.TrueAsync(async () =>
        {
            using var begin = await server.Http.PostAsJsonAsync("/transactions", new { timeoutSeconds = 30 });
            return begin.StatusCode == HttpStatusCode.Created;
        }, TimeSpan.FromSeconds(30), server.Process.Describe);
    }

    [Fact]
    public async Task Item11_a_40MB_body_is_a_413_problem()
    {
        await using var server = await ServerProcess.StartAsync([]);
        var (status, headers, body) = await server.RawAsync(
            "POST /transactions HTTP/1.1\r\nHost: limits\r\nContent-Type: application/json\r\nContent-Length: 41943040", new byte[256 * 1024]);
        AssertRawProblem(413, status, headers, body);
        await BeginAsync(server.Http);
        Assert.True(server.IsRunning, server.Process.Describe());
    }

    [Fact]
    public async Task Item11_a_12MB_JSON_body_is_refused_with_413_before_it_is_parsed()
    {
        await using var server = await ServerProcess.StartAsync([]);
        var json = Encoding.UTF8.GetBytes("{\"timeoutSeconds\":30,\"padding\":\"" + new string('x', 12 * 1024 * 1024) + "\"}");
        var (status, headers, body) = await server.RawAsync(
            $"POST /transactions HTTP/1.1\r\nHost: limits\r\nContent-Type: application/json\r\nContent-Length: {json.Length}", json);
        AssertRawProblem(413, status, headers, body);

        // Chunked (no Content-Length): refused once the limit is passed.
        var chunks = new StringBuilder();
        foreach (var data in new[] { "{\"timeoutSeconds\":30,\"padding\":\"" }.Concat(Enumerable.Repeat(new string('y', 0x10000), 8)))
        {
            chunks.Append(CultureInfo.InvariantCulture, $"{data.Length:x}\r\n{data}\r\n");
        }

        var chunked = Encoding.ASCII.GetBytes(chunks.ToString());
        (status, headers, body) = await server.RawAsync("POST /transactions HTTP/1.1\r\nHost: limits\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked", chunked);
        AssertRawProblem(413, status, headers, body);
        await BeginAsync(server.Http);
    }

    [Fact]
    public async Task Item11_a_slow_body_is_a_408_problem()
    {
        await using var server = await ServerProcess.StartAsync(["--Coordinator:Limits:MinRequestBodyDataRateGracePeriod=00:00:02"]);
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, server.Port);
        var stream = client.GetStream();
        await stream.WriteAsync("POST /transactions HTTP/1.1\r\nHost: limits\r\nContent-Type: application/json\r\nContent-Length: 2000\r\n\r\n{\"timeoutSeconds\":"u8.ToArray());

        // Nothing more is sent: the server gives up on the body at the minimum data rate and answers.
        var (status, headers, body) = await ServerProcess.ReadResponseAsync(stream).WaitAsync(TimeSpan.FromSeconds(60));
        AssertRawProblem(408, status, headers, body);
        await BeginAsync(server.Http);
        Assert.True(server.IsRunning, server.Process.Describe());
    }

    [TmpfsFact]
    public async Task Item12_a_full_disk_answers_503_with_what_happened_and_health_reports_the_log()
    {
        using var disk = Tmpfs.Mount(sizeKiB: 1024);
        await using var participants = new Participants();
        await participants.StartAsync();
        await using var server = await ServerProcess.StartAsync([.. ServerFixture.DevelopmentParticipants(participants.BaseAddress)], logDirectory: Path.Combine(disk.Path, "log"));
        Assert.Equal(HttpStatusCode.OK, (await CommitOneAsync(server, participants)).Status);

        // Fill the disk, then commit until a decision no longer fits (the segment's last page may still take a few).
        disk.Fill();
        (HttpStatusCode Status, string Body) last = default;
        for (var i = 0; i < 500; i++)
        {
            last = await CommitOneAsync(server, participants);
            if (last.Status != HttpStatusCode.OK)
            {
                break;
            }
        }

        Assert.True(last.Status == HttpStatusCode.ServiceUnavailable, $"commit answered {(int)last.Status}: {last.Body}\n{server.Process.Describe()}");
        var problem = JsonDocument.Parse(last.Body!).RootElement;
        Assert.Equal(503, problem.GetProperty("status").GetInt32());
        Assert.Contains("space", problem.GetProperty("detail").GetString(), StringComparison.OrdinalIgnoreCase);
        Assert.Contains("in doubt", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);

        // Every later decision is refused the same way, begin included, and the process stays up.
        using (var begin = await server.Http.PostAsJsonAsync("/transactions", new { timeoutSeconds = 30 }))
        {
            var refused = await AssertProblemAsync(begin, HttpStatusCode.ServiceUnavailable);
            Assert.Contains("log", refused.GetProperty("detail").GetString(), StringComparison.OrdinalIgnoreCase);
        }

        using var health = await server.Http.GetAsync("/health");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, health.StatusCode);
        Assert.Equal("application/json", health.Content.Headers.ContentType?.MediaType);
        var report = await health.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("Unhealthy", report.GetProperty("status").GetString());
        var check = report.GetProperty("checks").GetProperty("twopc");
        Assert.Equal("Unhealthy", check.GetProperty("status").GetString());
        Assert.Contains("log", check.GetProperty("description").GetString(), StringComparison.OrdinalIgnoreCase);
        Assert.False(check.GetProperty("data").GetProperty("log_writable").GetBoolean());
        Assert.Contains("space", check.GetProperty("error").GetString(), StringComparison.OrdinalIgnoreCase);
        Assert.True(server.IsRunning, server.Process.Describe());
    }

    private static async Task<(HttpStatusCode Status, string Body)> CommitOneAsync(ServerProcess server, Participants participants)
    {
        var id = await BeginAsync(server.Http);
        using (var branch = await server.Http.PostAsJsonAsync($"/transactions/{id}/branches", new { resourceManager = "disk", callbackUrl = participants.CallbackUrl("disk") }))
        {
            Assert.Equal(HttpStatusCode.Created, branch.StatusCode);
        }

        using var commit = await server.Http.PostAsync($"/transactions/{id}/commit", null);
        return (commit.StatusCode, await commit.Content.ReadAsStringAsync());
    }

    private static async Task<string> BeginAsync(HttpClient http, int timeoutSeconds = 300)
    {
        using var response = await http.PostAsJsonAsync("/transactions", new { timeoutSeconds });
        Assert.True(response.StatusCode == HttpStatusCode.Created, $"begin answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
    }

    internal static async Task<JsonElement> AssertProblemAsync(HttpResponseMessage response, HttpStatusCode status)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"expected {(int)status}, got {(int)response.StatusCode}: {text}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = JsonDocument.Parse(text).RootElement;
        Assert.Equal((int)status, problem.GetProperty("status").GetInt32());
        Assert.False(string.IsNullOrEmpty(problem.GetProperty("detail").GetString()), text);
        Assert.DoesNotContain(" at TwoPC.", text, StringComparison.Ordinal);
        return problem;
    }

    private static void AssertRawProblem(int expected, int status, string headers, string body)
    {
        Assert.True(status == expected, $"expected {expected}, got {status}:\n{headers}\n\n{body}");
        Assert.Contains("application/problem+json", headers, StringComparison.OrdinalIgnoreCase);
        var problem = JsonDocument.Parse(body).RootElement;
        Assert.Equal(expected, problem.GetProperty("status").GetInt32());
        Assert.False(string.IsNullOrEmpty(problem.GetProperty("detail").GetString()), body);
    }

    private static bool IsClosedByPeer(Socket socket)
    {
        try
        {
            // Readable with nothing to read = end of stream.
            return socket.Poll(0, SelectMode.SelectRead) && socket.Available == 0;
        }
        catch (SocketException)
        {
            return true;
        }
        catch (ObjectDisposedException)
        {
            return true;
        }
    }
}

/// <summary>Runs only where a tmpfs can be mounted (root, as in CI); elsewhere skipped with the reason.</summary>
public sealed class TmpfsFactAttribute : FactAttribute
{
    public TmpfsFactAttribute()
    {
        if (Tmpfs.WhyNot() is { } reason)
        {
            Skip = reason;
        }
    }
}

/// <summary>A small tmpfs mounted for one test (a disk that can be filled), unmounted on dispose.</summary>
public sealed class Tmpfs : IDisposable
{
    private static readonly Lazy<string?> Unavailable = new(Probe);

    private Tmpfs(string path) => Path = path;

    public string Path { get; }

    /// <summary>Why no tmpfs can be mounted here, or <see langword="null"/> when one can.</summary>
    public static string? WhyNot() => Unavailable.Value;

    public static Tmpfs Mount(int sizeKiB)
    {
        var path = Directory.CreateTempSubdirectory("twopc-tmpfs-").FullName;
        Run("mount", "-t", "tmpfs", "-o", $"size={sizeKiB.ToString(CultureInfo.InvariantCulture)}k", "tmpfs", path);
        return new Tmpfs(path);
    }

    /// <summary>Writes a filler file until the file system is full.</summary>
    public void Fill()
    {
        using var filler = new FileStream(System.IO.Path.Combine(Path, "filler"), FileMode.Create, FileAccess.Write, FileShare.None, 1, FileOptions.None);
        var block = new byte[4096];
        try
        {
            while (true)
            {
                filler.Write(block);
            }
        }
        catch (IOException)
        {
            // Full.
        }
    }

    public void Dispose()
    {
        Run("umount", "-l", Path);
        Directory.Delete(Path);
    }

    private static string? Probe()
    {
        if (!OperatingSystem.IsLinux())
        {
            return "Needs Linux (tmpfs) to simulate a full disk.";
        }

        if (!Environment.IsPrivilegedProcess)
        {
            return "Needs root to mount a small tmpfs that simulates a full disk (CI runs as root).";
        }

        try
        {
            using var probe = Mount(64);
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            return "Cannot run mount to simulate a full disk: " + ex.Message;
        }
        catch (InvalidOperationException ex)
        {
            return "Cannot mount a tmpfs to simulate a full disk: " + ex.Message;
        }

        return null;
    }

    private static void Run(string program, params string[] arguments)
    {
        var start = new System.Diagnostics.ProcessStartInfo(program) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = System.Diagnostics.Process.Start(start) ?? throw new InvalidOperationException($"{program} did not start.");
        var error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{program} {string.Join(' ', arguments)} failed ({process.ExitCode}): {error.Trim()}");
        }
    }
}
