using System.Text.Json;
using TwoPC.Durability;
using TwoPC.Participants;
using TwoPC.Protocol;
using TwoPC.Transactions;
using TwoPC.Wal;

namespace TwoPC.Cli.Tests;

public sealed class LogInspectTests : IDisposable
{
    private static readonly NodeId Node = NodeId.Parse("node-a");

    private readonly string _directory = Path.Combine(Path.GetTempPath(), "twopc-cli-tests", Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }

    [Fact]
    public async Task Clean_log_names_the_pending_decision_and_the_heuristic_but_not_the_ended_one()
    {
        await WriteLogAsync();

        var (exitCode, output) = await RunAsync("log", "inspect", _directory);

        Assert.Equal(0, exitCode);
        Assert.Contains(Id(1).ToString(), output, StringComparison.Ordinal);
        Assert.Contains(Xid.ForBranch(Id(1), 0).ToString(), output, StringComparison.Ordinal);
        Assert.Contains(Id(3).ToString(), output, StringComparison.Ordinal);
        Assert.Contains("HeuristicMixed", output, StringComparison.Ordinal);
        Assert.Contains("rm-1 rolled back on its own", output, StringComparison.Ordinal);
        Assert.DoesNotContain(Id(2).ToString(), output, StringComparison.Ordinal);
        Assert.Contains("Start epoch 2.", output, StringComparison.Ordinal);
        Assert.Contains("CLEAN", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Records_lists_every_record_including_the_ended_one()
    {
        await WriteLogAsync();

        var (exitCode, output) = await RunAsync("log", "inspect", _directory, "--records");

        Assert.Equal(0, exitCode);
        Assert.Contains("CommitDecision", output, StringComparison.Ordinal);
        Assert.Contains("End", output, StringComparison.Ordinal);
        Assert.Contains(Id(2).ToString(), output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Json_report_parses_and_lists_what_recovery_would_do()
    {
        await WriteLogAsync();

        var (exitCode, output) = await RunAsync("log", "inspect", _directory, "--json", "--records");

        Assert.Equal(0, exitCode);
        using var json = JsonDocument.Parse(output);
        var recovery = json.RootElement.GetProperty("recovery");
        Assert.Equal(2UL, recovery.GetProperty("epoch").GetUInt64());
        Assert.Equal(Id(1).ToString(), recovery.GetProperty("pendingDecisions")[0].GetProperty("gtrid").GetString());
        Assert.Equal("HeuristicMixed", recovery.GetProperty("heuristics")[0].GetProperty("kind").GetString());
        Assert.Equal(5, json.RootElement.GetProperty("records").GetArrayLength());
    }

    [Fact]
    public async Task Works_while_a_coordinator_holds_the_log_open()
    {
        var log = new FileTransactionLog(new FileTransactionLogOptions { Directory = _directory });
        await using (log)
        {
            await log.OpenAsync(CancellationToken.None);
            await log.LogCommitDecisionAsync(Decision(1));

            var (exitCode, output) = await RunAsync("log", "inspect", _directory);

            Assert.Equal(0, exitCode);
            Assert.Contains(Id(1).ToString(), output, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Garbage_after_the_last_record_is_a_torn_tail_and_is_left_alone()
    {
        await WriteLogAsync();
        var segment = LastSegment();
        var cleanLength = new FileInfo(segment).Length;
        await using (var stream = new FileStream(segment, FileMode.Append))
        {
            stream.Write([0x13, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0xAB, 0xCD, 0xEF]);
        }

        var (exitCode, output) = await RunAsync("log", "inspect", _directory);

        Assert.Equal(1, exitCode);
        Assert.Contains($"TORN TAIL at offset {cleanLength} of {segment}", output, StringComparison.Ordinal);
        Assert.Contains("drop 11 bytes", output, StringComparison.Ordinal);
        Assert.Contains(Id(1).ToString(), output, StringComparison.Ordinal);
        Assert.Equal(cleanLength + 11, new FileInfo(segment).Length); // read-only: nothing truncated
    }

    [Fact]
    public async Task A_flipped_byte_in_a_middle_record_is_corruption_naming_file_and_offset()
    {
        await WriteLogAsync();
        var segment = LastSegment();
        var bytes = await File.ReadAllBytesAsync(segment);
        var record = TransactionLogInspector.Inspect(_directory).Records[1]; // the first commit decision; valid records follow it
        var victim = record.Offset - WalFormat.BatchHeaderSize; // each awaited decision is a batch of its own
        bytes[record.Offset + WalFormat.RecordHeaderSize + 3] ^= 0x40;
        await File.WriteAllBytesAsync(segment, bytes);

        var (exitCode, output) = await RunAsync("log", "inspect", _directory, "--records");

        Assert.Equal(2, exitCode);
        Assert.Contains($"CORRUPTION at offset {victim} of {segment}", output, StringComparison.Ordinal);
        Assert.Contains("refuse to start", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Item15_bit_rot_in_the_last_record_is_corruption_not_a_torn_tail()
    {
        await WriteLogAsync();
        var segment = LastSegment();
        var bytes = await File.ReadAllBytesAsync(segment);
        bytes[^10] ^= 0x01; // inside the last (acknowledged) record
        await File.WriteAllBytesAsync(segment, bytes);

        var (exitCode, output) = await RunAsync("log", "inspect", _directory);

        Assert.Equal(2, exitCode);
        Assert.Contains($"CORRUPTION at offset", output, StringComparison.Ordinal);
        Assert.DoesNotContain("TORN", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Item16_a_missing_segment_is_corruption_not_clean()
    {
        await WriteLogAsync();
        var segment = LastSegment();
        File.Delete(segment);

        var (exitCode, output) = await RunAsync("log", "inspect", _directory);

        Assert.Equal(2, exitCode);
        Assert.Contains($"{Path.GetFileName(segment)} named by the manifest is missing", output, StringComparison.Ordinal);
        Assert.DoesNotContain("CLEAN", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Item16_a_zeroed_segment_is_corruption()
    {
        await WriteLogAsync();
        var segment = LastSegment();
        await File.WriteAllBytesAsync(segment, new byte[new FileInfo(segment).Length]);

        var (exitCode, output) = await RunAsync("log", "inspect", _directory);

        Assert.Equal(2, exitCode);
        Assert.Contains($"CORRUPTION at offset 0 of {segment}", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Item16_segments_without_their_manifest_are_corruption()
    {
        await WriteLogAsync();
        File.Delete(Path.Combine(_directory, "MANIFEST"));

        var (exitCode, output) = await RunAsync("log", "inspect", _directory, "--records");

        Assert.Equal(2, exitCode);
        Assert.Contains("the manifest is missing", output, StringComparison.Ordinal);
        Assert.Contains("CommitDecision", output, StringComparison.Ordinal); // the records are still listed
    }

    [Fact]
    public async Task Item17_zeroed_sectors_at_the_end_are_a_torn_tail_and_the_node_id_is_shown()
    {
        await WriteLogAsync(new NodeId?(Node));
        var segment = LastSegment();
        var cleanLength = new FileInfo(segment).Length;
        await using (var stream = new FileStream(segment, FileMode.Append))
        {
            stream.Write(new byte[700]);
        }

        var (exitCode, output) = await RunAsync("log", "inspect", _directory);

        Assert.Equal(1, exitCode);
        Assert.Contains($"TORN TAIL at offset {cleanLength} of {segment}", output, StringComparison.Ordinal);
        Assert.Contains("Node id:       node-a", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_missing_directory_is_a_clear_error()
    {
        var missing = Path.Combine(_directory, "nope");

        var (exitCode, output) = await RunAsync("log", "inspect", missing);

        Assert.Equal(3, exitCode);
        Assert.Contains($"The log directory '{missing}' does not exist.", output, StringComparison.Ordinal);
        Assert.False(Directory.Exists(missing));
    }

    [Fact]
    public async Task Bad_usage_exits_with_3()
    {
        var (exitCode, output) = await RunAsync("log", "inspect");

        Assert.Equal(3, exitCode);
        Assert.Contains("error:", output, StringComparison.Ordinal);
    }

    private static async Task<(int ExitCode, string Output)> RunAsync(params string[] args)
    {
        using var output = new StringWriter();
        var exitCode = await Program.RunAsync(args, output);
        return (exitCode, output.ToString());
    }

    private string LastSegment() => Directory.GetFiles(_directory, "wal-*.seg").Order(StringComparer.Ordinal).Last();

    /// <summary>Epoch 1, decision 1 (no END), decision 2 + its END, heuristic 3: five records.</summary>
    private async Task WriteLogAsync(NodeId? node = null)
    {
        var log = new FileTransactionLog(new FileTransactionLogOptions { Directory = _directory });
        await using (log)
        {
            if (node is { } id)
            {
                await log.OpenAsync(id, CancellationToken.None);
            }
            else
            {
                await log.OpenAsync(CancellationToken.None);
            }

            await log.LogCommitDecisionAsync(Decision(1));
            await log.LogCommitDecisionAsync(Decision(2));
            log.LogEnd(Id(2));
            await log.LogHeuristicAsync(Heuristic(3));
        }
    }

    private static GlobalTransactionId Id(ulong sequence) => new(Node, 7, sequence);

    private static CommitDecision Decision(ulong sequence) =>
        new(
            Id(sequence),
            DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000 + (long)sequence),
            Enumerable.Range(0, 2).Select(b => new LoggedBranch($"rm-{b}", Xid.ForBranch(Id(sequence), b), new byte[] { (byte)b })).ToArray());

    private static HeuristicRecord Heuristic(ulong sequence) =>
        new(
            Id(sequence),
            DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_100_000 + (long)sequence),
            OutcomeKind.HeuristicMixed,
            $"branch rm-1 rolled back on its own ({sequence})",
            [
                new HeuristicBranch("rm-0", Xid.ForBranch(Id(sequence), 0), BranchOutcome.Committed),
                new HeuristicBranch("rm-1", Xid.ForBranch(Id(sequence), 1), BranchOutcome.RolledBack),
            ]);
}
