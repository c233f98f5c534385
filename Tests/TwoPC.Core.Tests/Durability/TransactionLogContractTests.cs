using TwoPC.Durability;
using TwoPC.Testing;
using TwoPC.Tests.Wal;
using TwoPC.Transactions;
using TwoPC.Wal;
using static TwoPC.Tests.Wal.Records;

namespace TwoPC.Tests.Durability;

/// <summary>
/// The <see cref="ITransactionLog"/> contract, run the same way against the file log and the shipped
/// <see cref="InMemoryTransactionLog"/> (package TwoPC.TestServers), so a user's tests on the in-memory log see what a
/// coordinator sees in production.
/// </summary>
public sealed class TransactionLogContractTests : IDisposable
{
    private readonly TempLogDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    public static TheoryData<string> Logs => ["file", "memory"];

    [Theory]
    [MemberData(nameof(Logs))]
    public async Task A_new_log_starts_at_epoch_one_and_each_restart_takes_a_larger_epoch(string kind)
    {
        var medium = Medium.Create(kind, _dir);
        for (ulong expected = 1; expected <= 3; expected++)
        {
            await using var log = medium.Restart();
            var state = await log.OpenAsync(Node, CancellationToken.None);
            Assert.Equal(expected, state.Epoch);
            Assert.Empty(state.PendingDecisions);
            Assert.Empty(state.Heuristics);
            Assert.Empty(state.Warnings);
        }
    }

    [Theory]
    [MemberData(nameof(Logs))]
    public async Task A_restart_finds_the_decisions_without_an_end_and_the_heuristics_not_forgotten_in_id_order(string kind)
    {
        var medium = Medium.Create(kind, _dir);
        await using (var log = medium.Restart())
        {
            await log.OpenAsync(Node, CancellationToken.None);
            foreach (var i in new ulong[] { 4, 1, 3, 2, 5 })
            {
                await log.LogCommitDecisionAsync(Decision(i));
            }

            await log.LogHeuristicAsync(Heuristic(100));
            await log.LogHeuristicAsync(Heuristic(101));
            log.LogEnd(Id(2));
            log.LogEnd(Id(101));
            log.LogEnd(Id(999)); // an END for an unknown transaction is harmless
        }

        await using (var log = medium.Restart())
        {
            var state = await log.OpenAsync(Node, CancellationToken.None);
            Assert.Equal(new ulong[] { 1, 3, 4, 5 }, state.PendingDecisions.Select(d => d.TransactionId.Sequence).ToArray());
            foreach (var decision in state.PendingDecisions)
            {
                AssertSame(Decision(decision.TransactionId.Sequence), decision);
            }

            AssertSame(Heuristic(100), Assert.Single(state.Heuristics));
            log.LogEnd(Id(100));
            log.LogEnd(Id(1));
        }

        await using (var log = medium.Restart())
        {
            var state = await log.OpenAsync(Node, CancellationToken.None);
            Assert.Empty(state.Heuristics);
            Assert.Equal(new ulong[] { 3, 4, 5 }, state.PendingDecisions.Select(d => d.TransactionId.Sequence).ToArray());
        }
    }

    [Theory]
    [MemberData(nameof(Logs))]
    public async Task A_log_written_for_one_node_refuses_another(string kind)
    {
        var medium = Medium.Create(kind, _dir);
        await using (var log = medium.Restart())
        {
            await log.OpenAsync(Node, CancellationToken.None);
            await log.LogCommitDecisionAsync(Decision(1));
        }

        await using (var log = medium.Restart())
        {
            var error = await Assert.ThrowsAsync<TransactionLogNodeMismatchException>(() => log.OpenAsync(NodeId.Parse("node-b"), CancellationToken.None).AsTask());
            Assert.Equal("node-a", error.LogNodeId);
            Assert.Equal("node-b", error.NodeId);
        }

        await using (var log = medium.Restart())
        {
            Assert.Single((await log.OpenAsync(Node, CancellationToken.None)).PendingDecisions);
        }
    }

    [Theory]
    [MemberData(nameof(Logs))]
    public async Task One_opener_at_a_time(string kind)
    {
        var medium = Medium.Create(kind, _dir);
        await using var first = medium.Restart();
        await first.OpenAsync(Node, CancellationToken.None);

        await using var second = medium.Restart();
        // The file log: another instance on the directory is locked out; the in-memory log: the instance is the directory.
        var error = await Assert.ThrowsAnyAsync<Exception>(() => second.OpenAsync(Node, CancellationToken.None).AsTask());
        Assert.True(error is TransactionLogLockedException or InvalidOperationException, error.ToString());
        await first.LogCommitDecisionAsync(Decision(1)); // the first opener is unaffected
    }

    [Theory]
    [MemberData(nameof(Logs))]
    public async Task Calls_after_dispose_throw_ObjectDisposedException(string kind)
    {
        var medium = Medium.Create(kind, _dir);
        var log = medium.Restart();
        await log.OpenAsync(Node, CancellationToken.None);
        await log.DisposeAsync();
        await log.DisposeAsync(); // idempotent

        await Assert.ThrowsAsync<ObjectDisposedException>(() => log.LogCommitDecisionAsync(Decision(1)).AsTask());
        await Assert.ThrowsAsync<ObjectDisposedException>(() => log.LogHeuristicAsync(Heuristic(2)).AsTask());
        Assert.Throws<ObjectDisposedException>(() => log.LogEnd(Id(1)));
    }

    [Theory]
    [MemberData(nameof(Logs))]
    public async Task A_failed_force_stops_the_log_and_what_was_acknowledged_before_survives_the_restart(string kind)
    {
        var medium = Medium.Create(kind, _dir);
        await using (var log = medium.Restart())
        {
            await log.OpenAsync(Node, CancellationToken.None);
            await log.LogCommitDecisionAsync(Decision(1));
            await log.LogCommitDecisionAsync(Decision(2));
            log.LogEnd(Id(2));
            Assert.Null(log.Failure);

            medium.FailNextForce();
            await Assert.ThrowsAsync<TransactionLogFailedException>(() => log.LogCommitDecisionAsync(Decision(3)).AsTask());
            Assert.NotNull(log.Failure);

            // Fail-stop: every later call throws, whatever the medium does now.
            medium.Heal();
            await Assert.ThrowsAsync<TransactionLogFailedException>(() => log.LogCommitDecisionAsync(Decision(4)).AsTask());
            await Assert.ThrowsAsync<TransactionLogFailedException>(() => log.LogHeuristicAsync(Heuristic(5)).AsTask());
            Assert.Throws<TransactionLogFailedException>(() => log.LogEnd(Id(1)));
        }

        await using (var log = medium.Restart())
        {
            var state = await log.OpenAsync(Node, CancellationToken.None);
            Assert.Null(log.Failure);
            // Decision 3 may or may not be durable (the contract says "in doubt"); 1 is, 2 and 4 are not pending.
            var pending = state.PendingDecisions.Select(d => d.TransactionId.Sequence).ToArray();
            Assert.Contains(1UL, pending);
            Assert.DoesNotContain(2UL, pending);
            Assert.DoesNotContain(4UL, pending);
        }
    }

    /// <summary>Where a log lives across restarts: a directory (a new file log each time) or one in-memory instance.</summary>
    private abstract class Medium
    {
        public static Medium Create(string kind, TempLogDirectory dir) => kind switch
        {
            "file" => new FileMedium(dir),
            "memory" => new MemoryMedium(),
            _ => throw new ArgumentOutOfRangeException(nameof(kind)),
        };

        /// <summary>The log a restarted coordinator opens.</summary>
        public abstract ITransactionLog Restart();

        public abstract void FailNextForce();

        public abstract void Heal();
    }

    private sealed class FileMedium(TempLogDirectory dir) : Medium
    {
        private readonly FaultyWalFileSystem _fileSystem = new();

        public override ITransactionLog Restart() => dir.CreateLog(_fileSystem);

        public override void FailNextForce() => _fileSystem.FailFlushes = true;

        public override void Heal() => _fileSystem.FailFlushes = false;
    }

    private sealed class MemoryMedium : Medium
    {
        private readonly InMemoryTransactionLog _log = new();

        public override ITransactionLog Restart() => _log;

        public override void FailNextForce() => _log.FailNextForce = new IOException("injected");

        public override void Heal() => _log.FailNextForce = null;
    }
}
