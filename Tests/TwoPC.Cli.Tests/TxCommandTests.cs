using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using TwoPC.Client;

namespace TwoPC.Cli.Tests;

/// <summary>The <c>twopc tx</c> commands, run in-process against a real coordinator server on loopback.</summary>
public sealed class TxCommandTests(CoordinatorServerFixture server) : IClassFixture<CoordinatorServerFixture>
{
    [Fact]
    public async Task List_and_show_report_a_branch_whose_commit_is_retried_as_tables_and_as_json()
    {
        var (id, xa, xb, commit) = await CommittingAsync("list-a", "list-b");

        var (exitCode, output, error) = await RunAsync("tx", "list", "--server", server.ServerUrl, "--api-key", CoordinatorServerFixture.ApiKey);

        Assert.Equal(0, exitCode);
        Assert.Equal(string.Empty, error);
        var lines = output.Split('\n');
        var header = Assert.Single(lines, l => l.Contains("Resource manager", StringComparison.Ordinal) && l.Contains("Xid", StringComparison.Ordinal));
        var row = Assert.Single(lines, l => l.Contains(xb, StringComparison.Ordinal));
        Assert.Equal(header.IndexOf("Xid", StringComparison.Ordinal), row.IndexOf(xb, StringComparison.Ordinal)); // aligned columns
        Assert.Contains("Committing", row, StringComparison.Ordinal);
        Assert.Contains(id, row, StringComparison.Ordinal);
        Assert.Contains("list-b", row, StringComparison.Ordinal);
        Assert.DoesNotContain(xa, output, StringComparison.Ordinal);
        Assert.Contains("Heuristic outcomes (", output, StringComparison.Ordinal);

        (exitCode, output, _) = await RunAsync("tx", "list", "--json", "--server", server.ServerUrl, "--api-key", CoordinatorServerFixture.ApiKey);
        Assert.Equal(0, exitCode);
        using (var json = JsonDocument.Parse(output))
        {
            var branch = json.RootElement.GetProperty("inDoubt").EnumerateArray().Single(b => b.GetProperty("xid").GetString() == xb);
            Assert.Equal("Committing", branch.GetProperty("resolution").GetString());
            Assert.Equal(id, branch.GetProperty("transactionId").GetString());
            Assert.Equal(JsonValueKind.Array, json.RootElement.GetProperty("heuristics").ValueKind);
        }

        (exitCode, output, _) = await RunAsync("tx", "show", id, "--server", server.ServerUrl);
        Assert.Equal(0, exitCode);
        Assert.Contains("State        Committing", output, StringComparison.Ordinal);
        Assert.Contains("Committed", Assert.Single(output.Split('\n'), l => l.Contains(xa, StringComparison.Ordinal)), StringComparison.Ordinal);
        Assert.Contains("list-b", Assert.Single(output.Split('\n'), l => l.Contains(xb, StringComparison.Ordinal)), StringComparison.Ordinal);

        (exitCode, output, _) = await RunAsync("tx", "show", id, "--json", "--server", server.ServerUrl);
        Assert.Equal(0, exitCode);
        using (var json = JsonDocument.Parse(output))
        {
            Assert.Equal("Committing", json.RootElement.GetProperty("state").GetString());
            Assert.Equal(2, json.RootElement.GetProperty("branches").GetArrayLength());
        }

        await ReleaseAsync("list-b", commit);
    }

    [Fact]
    public async Task Force_rollback_of_a_committing_branch_is_refused_with_exit_1_and_a_forced_commit_succeeds()
    {
        var (_, _, xb, commit) = await CommittingAsync("force-a", "force-b");

        var (exitCode, output, error) = await RunAsync("tx", "force-rollback", xb, "--resource-manager", "force-b", "--server", server.ServerUrl, "--api-key", CoordinatorServerFixture.ApiKey);

        Assert.Equal(1, exitCode);
        Assert.Equal(string.Empty, output);
        var line = Assert.Single(error.TrimEnd().Split('\n'));
        Assert.StartsWith("error: 409", line, StringComparison.Ordinal);
        Assert.Contains("commit decision", line, StringComparison.Ordinal);
        Assert.Equal("prepared", server.States[("force-b", xb)]);

        server.CommitStatus.TryRemove("force-b", out _);
        (exitCode, output, error) = await RunAsync("tx", "force-commit", xb, "-r", "force-b", "--server", server.ServerUrl, "--api-key", CoordinatorServerFixture.ApiKey);
        Assert.Equal(0, exitCode);
        Assert.Equal(string.Empty, error);
        Assert.StartsWith("Committed: ", output, StringComparison.Ordinal);
        Assert.Equal("committed", server.States[("force-b", xb)]);
        await commit;
    }

    [Fact]
    public async Task Item10_force_rollback_of_an_orphan_nobody_can_reach_fails_and_force_commit_of_it_needs_the_override()
    {
        var (id, _) = await server.BeginAsync("orphan-rm"); // registers the resource manager
        const string orphan = "54504331_cli-test.0.7_1"; // an earlier epoch of this node: no record

        // Allowed by presumed abort, but no callback URL is known for it: the coordinator cannot reach the participant, and says so.
        var (exitCode, output, error) = await RunAsync("tx", "force-rollback", orphan, "-r", "orphan-rm", "--json", "--server", server.ServerUrl, "--api-key", CoordinatorServerFixture.ApiKey);
        Assert.Equal(3, exitCode);
        Assert.Equal(string.Empty, output);
        Assert.StartsWith("error: 502", error, StringComparison.Ordinal);
        Assert.Contains("no callback URL is known", error, StringComparison.Ordinal);

        (exitCode, _, error) = await RunAsync("tx", "force-commit", orphan, "-r", "orphan-rm", "--server", server.ServerUrl, "--api-key", CoordinatorServerFixture.ApiKey);
        Assert.Equal(1, exitCode);
        Assert.StartsWith("error: 409", error, StringComparison.Ordinal);
        Assert.Contains("override", error, StringComparison.Ordinal);

        (exitCode, _, error) = await RunAsync("tx", "force-rollback", orphan, "-r", "no-such-rm", "--server", server.ServerUrl, "--api-key", CoordinatorServerFixture.ApiKey);
        Assert.Equal(1, exitCode);
        Assert.StartsWith("error: 404", error, StringComparison.Ordinal);
        using var rollback = await server.Client.PostAsync($"/transactions/{id}/rollback", null);
    }

    [Theory]
    [InlineData("wrong-key")]
    [InlineData("")]
    public async Task A_wrong_or_missing_api_key_is_one_clear_line_and_changes_nothing(string key)
    {
        var (_, _, xb, commit) = await CommittingAsync("key-a" + key, "key-b" + key);

        var (exitCode, output, error) = await RunAsync("tx", "force-rollback", xb, "-r", "key-b" + key, "--server", server.ServerUrl, "--api-key", key);

        Assert.Equal(key.Length == 0 ? 2 : 3, exitCode);
        Assert.Equal(string.Empty, output);
        var line = Assert.Single(error.TrimEnd().Split('\n'));
        Assert.StartsWith(key.Length == 0 ? "error: no API key" : "error: 401", line, StringComparison.Ordinal);
        Assert.Equal("prepared", server.States[("key-b" + key, xb)]);
        await ReleaseAsync("key-b" + key, commit);
    }

    [Fact]
    public async Task An_unreachable_server_exits_3_with_one_line()
    {
        var port = FreePort();

        var (exitCode, output, error) = await RunAsync("tx", "list", "--server", $"http://127.0.0.1:{port}", "--api-key", "k");

        Assert.Equal(3, exitCode);
        Assert.Equal(string.Empty, output);
        var line = Assert.Single(error.TrimEnd().Split('\n'));
        Assert.StartsWith($"error: cannot reach the coordinator at http://127.0.0.1:{port}/", line, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("tx")]
    [InlineData("tx", "force-commit", "54504331_x.1.1_1")]
    [InlineData("tx", "list", "--server", "ftp://example")]
    public async Task Bad_usage_of_tx_exits_2(params string[] args)
    {
        var (exitCode, _, error) = await RunAsync(args);

        Assert.Equal(2, exitCode);
        Assert.StartsWith("error:", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_malformed_id_rejected_by_the_server_exits_2()
    {
        var (exitCode, _, error) = await RunAsync("tx", "show", "not an id", "--server", server.ServerUrl);

        Assert.Equal(2, exitCode);
        Assert.StartsWith("error: 400", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Help_documents_the_exit_codes()
    {
        var (exitCode, output, _) = await RunAsync("tx", "--help");

        Assert.Equal(0, exitCode);
        Assert.Contains("Exit codes: 0 = done; 1 = refused", output, StringComparison.Ordinal);
        Assert.Contains("force-rollback", output, StringComparison.Ordinal);
    }

    /// <summary>A transaction of two branches whose second participant answers 500 to commit, listed in doubt.</summary>
    private async Task<(string Id, string Xa, string Xb, Task Commit)> CommittingAsync(string first, string second)
    {
        server.CommitStatus[second] = 500;
        var (id, xids) = await server.BeginAsync(first, second);
        var commit = server.Client.PostAsync($"/transactions/{id}/commit", null);
        var admin = new TwoPCAdminClient(server.Client, CoordinatorServerFixture.ApiKey);
        for (var i = 0; i < 500; i++)
        {
            var inDoubt = await admin.ListInDoubtAsync();
            if (inDoubt.Any(b => b.Xid == xids[1]) && inDoubt.All(b => b.Xid != xids[0]))
            {
                return (id, xids[0], xids[1], commit);
            }

            await Task.Delay(20);
        }

        Assert.Fail($"{xids[1]} was not listed in doubt");
        return default;
    }

    private async Task ReleaseAsync(string participant, Task commit)
    {
        server.CommitStatus.TryRemove(participant, out _);
        await commit;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static async Task<(int ExitCode, string Output, string Error)> RunAsync(params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var exitCode = await Program.RunAsync(args, output, error);
        return (exitCode, output.ToString(), error.ToString());
    }
}
