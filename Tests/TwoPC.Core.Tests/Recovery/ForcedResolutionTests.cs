using System.Diagnostics.Metrics;
using Microsoft.Extensions.Time.Testing;
using TwoPC.Durability;
using TwoPC.Participants;
using TwoPC.Protocol;
using TwoPC.Recovery;
using TwoPC.Testing;
using TwoPC.Transactions;
using static TwoPC.Tests.Protocol.CoordinatorFixture;

namespace TwoPC.Tests.Recovery;

/// <summary>Operator tools: what waits in doubt, forcing one branch by hand under the safety rules, and the resource manager resolver.</summary>
public sealed class ForcedResolutionTests
{
    private static readonly NodeId Node = NodeId.Parse("node-a");

    [Fact]
    public async Task Forced_rollback_of_a_logged_decision_being_redriven_is_refused_and_changes_nothing()
    {
        var time = new FakeTimeProvider();
        var log = new InMemoryTransactionLog();
        var a = new ScriptedResourceManager("a") { CommitFailuresRemaining = int.MaxValue };
        var b = new ScriptedResourceManager("b");
        var id = new GlobalTransactionId(Node, 1, 4);
        var (xa, xb) = (Xid.ForBranch(id, 1), Xid.ForBranch(id, 2));
        a.AddPrepared(xa);
        b.AddPrepared(xb);
        await log.OpenAsync(default);
        await log.LogCommitDecisionAsync(new CommitDecision(id, time.GetUtcNow(), [new LoggedBranch("a", xa, "ra"u8.ToArray()), new LoggedBranch("b", xb, default)]));
        await log.DisposeAsync(); // seeded by hand: closed, as a stopped coordinator leaves it

        var coordinator = await StartWithClockAsync(Options(), log, time, a, b);
        await WaitUntilAsync(() => b.States[xb] == TestBranchState.Committed && a.Calls.Any(c => c.StartsWith("commit", StringComparison.Ordinal)));

        var result = await coordinator.ForceRollbackBranchAsync("a", xa);

        Assert.Equal(ForcedBranchStatus.Refused, result.Status);
        Assert.Contains("commit decision on record", result.Message, StringComparison.Ordinal);
        Assert.False(result.Succeeded);
        Assert.Equal(TestBranchState.Prepared, a.States[xa]);
        Assert.DoesNotContain(a.Calls, c => c.StartsWith("rollback", StringComparison.Ordinal));
        Assert.Equal(TransactionState.Committing, coordinator.GetStatus(id).State);
        Assert.Single(log.Decisions);
        await StopNowAsync(coordinator);
    }

    [Fact]
    public async Task A_forced_commit_of_a_branch_whose_phase_2_is_waiting_commits_it_with_the_logged_recovery_data()
    {
        var time = new FakeTimeProvider();
        var log = new InMemoryTransactionLog();
        var a = new ScriptedResourceManager("a");
        var b = new ScriptedResourceManager("b") { CommitFailuresRemaining = int.MaxValue };
        var coordinator = await StartWithClockAsync(Options(), log, time, a, b);
        var tx = BeginWith(coordinator, a, b);
        var xb = Xid.ForBranch(tx.Id, 2);
        var commit = tx.CommitAsync();
        await WaitUntilAsync(() => coordinator.GetInDoubt().Any(r => r.Xid == xb && r.Detail?.Contains("last error", StringComparison.Ordinal) == true));

        time.Advance(TimeSpan.FromMinutes(7));
        var entry = Assert.Single(coordinator.GetInDoubt());
        Assert.Equal(("b", xb, InDoubtResolution.Committing), (entry.ResourceManager, entry.Xid, entry.Resolution));
        Assert.True(entry.Age >= TimeSpan.FromMinutes(7), $"age {entry.Age}");
        Assert.Contains("scripted transient commit failure", entry.Detail, StringComparison.Ordinal);
        var status = coordinator.GetStatus(tx.Id);
        Assert.Equal(TransactionState.Committing, status.State);
        Assert.Equal([BranchOutcome.Committed, null], status.Branches!.Select(r => r.Outcome));

        // The resource is back; phase 2 still sleeps until its next retry, so only the forced call can commit it now.
        b.CommitFailuresRemaining = 0;
        var commitsBefore = b.Calls.Count(c => c.StartsWith("commit", StringComparison.Ordinal));
        var result = await coordinator.ForceCommitBranchAsync("b", xb);

        Assert.True(result.Succeeded, result.Message);
        Assert.Equal(BranchOutcome.Committed, result.Outcome);
        Assert.Equal(commitsBefore + 1, b.Calls.Count(c => c.StartsWith("commit", StringComparison.Ordinal)));
        Assert.Equal("data", System.Text.Encoding.UTF8.GetString(b.CommittedRecoveryData[xb]));
        Assert.Equal(TestBranchState.Committed, b.States[xb]);

        time.Advance(TimeSpan.FromMinutes(1)); // the retry finds it committed (idempotent) and the transaction ends
        Assert.Equal(OutcomeKind.Committed, (await commit).Kind);
        await coordinator.DisposeAsync();
    }

    [Fact]
    public async Task Active_transactions_refuse_both_and_a_rolled_back_one_refuses_commit()
    {
        var log = new InMemoryTransactionLog();
        var a = new ScriptedResourceManager("a");
        await using var coordinator = await StartAsync(log, a);
        var tx = BeginWith(coordinator, a);
        var xa = Xid.ForBranch(tx.Id, 1);

        var status = coordinator.GetStatus(tx.Id);
        Assert.Equal(("a", xa), (Assert.Single(status.Branches!).ResourceManager, status.Branches![0].Xid));
        var commit = await coordinator.ForceCommitBranchAsync("a", xa, overridePresumedAbort: true);
        var rollback = await coordinator.ForceRollbackBranchAsync("a", xa);
        Assert.Equal(ForcedBranchStatus.Refused, commit.Status);
        Assert.Equal(ForcedBranchStatus.Refused, rollback.Status);
        Assert.Contains("Active", commit.Message, StringComparison.Ordinal);
        Assert.Equal(TestBranchState.Active, a.States[xa]);

        await tx.RollbackAsync();
        var late = await coordinator.ForceCommitBranchAsync("a", xa, overridePresumedAbort: true);
        Assert.Equal(ForcedBranchStatus.Refused, late.Status);
        Assert.Contains("known rolled back", late.Message, StringComparison.Ordinal);
        Assert.Equal(TestBranchState.RolledBack, a.States[xa]);
        Assert.DoesNotContain(a.Calls, c => c.StartsWith("commit", StringComparison.Ordinal));

        var again = await coordinator.ForceRollbackBranchAsync("a", xa);
        Assert.True(again.Succeeded, again.Message);
    }

    [Fact]
    public async Task A_committed_transaction_refuses_rollback_and_answers_a_commit_from_its_record()
    {
        var log = new InMemoryTransactionLog();
        var a = new ScriptedResourceManager("a");
        var b = new ScriptedResourceManager("b");
        await using var coordinator = await StartAsync(log, a, b);
        var tx = BeginWith(coordinator, a, b);
        Assert.Equal(OutcomeKind.Committed, (await tx.CommitAsync()).Kind);
        var xa = Xid.ForBranch(tx.Id, 1);

        var rollback = await coordinator.ForceRollbackBranchAsync("a", xa);
        var commit = await coordinator.ForceCommitBranchAsync("a", xa);

        Assert.Equal(ForcedBranchStatus.Refused, rollback.Status);
        Assert.Contains("Committed", rollback.Message, StringComparison.Ordinal);
        Assert.True(commit.Succeeded, commit.Message);
        Assert.DoesNotContain(a.Calls, c => c.StartsWith("rollback", StringComparison.Ordinal));
        Assert.Equal(TestBranchState.Committed, a.States[xa]);
    }

    [Fact]
    public async Task A_heuristic_after_a_commit_decision_refuses_a_forced_rollback_but_allows_a_commit()
    {
        var log = new InMemoryTransactionLog();
        var a = new ScriptedResourceManager("a");
        var b = new ScriptedResourceManager("b") { CommitAnswer = BranchOutcome.RolledBack };
        await using var coordinator = await StartAsync(log, a, b);
        var tx = BeginWith(coordinator, a, b);
        Assert.Equal(OutcomeKind.HeuristicMixed, (await tx.CommitAsync()).Kind);
        var xb = Xid.ForBranch(tx.Id, 2);

        var rollback = await coordinator.ForceRollbackBranchAsync("b", xb);
        Assert.Equal(ForcedBranchStatus.Refused, rollback.Status);
        Assert.Contains("HeuristicMixed", rollback.Message, StringComparison.Ordinal);

        var commit = await coordinator.ForceCommitBranchAsync("b", xb);
        Assert.Equal(ForcedBranchStatus.Completed, commit.Status);
        Assert.Equal(BranchOutcome.RolledBack, commit.Outcome); // the resource says what it did: not a success
        Assert.False(commit.Succeeded);
    }

    [Fact]
    public async Task A_branch_of_this_node_with_no_record_is_rolled_back_and_committed_only_with_the_override()
    {
        var log = new InMemoryTransactionLog();
        var a = new ScriptedResourceManager("a");
        var old = new GlobalTransactionId(Node, 0, 9); // an earlier epoch: handed out, no record
        var (x1, x2) = (Xid.ForBranch(old, 1), Xid.ForBranch(old, 2));
        a.AddPrepared(x1);
        a.AddPrepared(x2);
        var options = Options();
        options.OrphanSafetyInterval = TimeSpan.FromHours(1); // recovery leaves them alone: too young
        await using var coordinator = await StartAsync(options, log, a);
        Assert.Equal(2, coordinator.GetInDoubt().Count(r => r.Resolution == InDoubtResolution.TooYoung));

        var rollback = await coordinator.ForceRollbackBranchAsync("a", x1);
        Assert.True(rollback.Succeeded, rollback.Message);
        Assert.Equal(TestBranchState.RolledBack, a.States[x1]);
        Assert.DoesNotContain(coordinator.GetInDoubt(), r => r.Xid == x1);
        Assert.Equal(1, coordinator.InDoubtBranches);

        var refused = await coordinator.ForceCommitBranchAsync("a", x2);
        Assert.Equal(ForcedBranchStatus.Refused, refused.Status);
        Assert.Contains("override", refused.Message, StringComparison.Ordinal);
        Assert.Equal(TestBranchState.Prepared, a.States[x2]);

        var forced = await coordinator.ForceCommitBranchAsync("a", x2, overridePresumedAbort: true);
        Assert.True(forced.Succeeded, forced.Message);
        Assert.Equal(TestBranchState.Committed, a.States[x2]);
        Assert.Empty(coordinator.GetInDoubt());
    }

    [Fact]
    public async Task A_transaction_id_not_handed_out_yet_is_refused()
    {
        var a = new ScriptedResourceManager("a");
        await using var coordinator = await StartAsync(new InMemoryTransactionLog(), a);
        var future = Xid.ForBranch(new GlobalTransactionId(Node, coordinator.Epoch, 1000), 1);

        var result = await coordinator.ForceCommitBranchAsync("a", future, overridePresumedAbort: true);

        Assert.Equal(ForcedBranchStatus.Refused, result.Status);
        Assert.Contains("not been begun", result.Message, StringComparison.Ordinal);
        Assert.False(a.States.ContainsKey(future));
    }

    [Fact]
    public async Task Another_nodes_branch_is_the_operators_call_both_ways()
    {
        var a = new ScriptedResourceManager("a");
        var other = new GlobalTransactionId(NodeId.Parse("node-gone"), 3, 1);
        var (x1, x2) = (Xid.ForBranch(other, 1), Xid.ForBranch(other, 2));
        a.AddPrepared(x1);
        a.AddPrepared(x2);
        await using var coordinator = await StartAsync(new InMemoryTransactionLog(), a);
        var listed = coordinator.GetInDoubt();
        Assert.All(listed, r => Assert.Equal(InDoubtResolution.Foreign, r.Resolution));
        Assert.All(listed, r => Assert.Contains("not a branch of this coordinator node", r.Detail, StringComparison.Ordinal));

        Assert.True((await coordinator.ForceCommitBranchAsync("a", x1)).Succeeded);
        Assert.True((await coordinator.ForceRollbackBranchAsync("a", x2)).Succeeded);

        Assert.Equal(TestBranchState.Committed, a.States[x1]);
        Assert.Equal(TestBranchState.RolledBack, a.States[x2]);
        Assert.Empty(coordinator.GetInDoubt());
    }

    [Fact]
    public async Task Item11_after_a_node_id_change_a_forced_rollback_of_a_branch_being_committed_is_refused()
    {
        // The log holds a commit decision written under the node's old id; the coordinator now runs as node-a and re-drives it.
        var time = new FakeTimeProvider();
        var log = new InMemoryTransactionLog();
        var a = new ScriptedResourceManager("a") { CommitFailuresRemaining = int.MaxValue };
        var b = new ScriptedResourceManager("b");
        var id = new GlobalTransactionId(NodeId.Parse("node-old"), 5, 2);
        var (xa, xb) = (Xid.ForBranch(id, 1), Xid.ForBranch(id, 2));
        a.AddPrepared(xa);
        b.AddPrepared(xb);
        await log.OpenAsync(default);
        await log.LogCommitDecisionAsync(new CommitDecision(id, time.GetUtcNow(), [new LoggedBranch("a", xa, "ra"u8.ToArray()), new LoggedBranch("b", xb, default)]));
        await log.DisposeAsync(); // seeded by hand: closed, as a stopped coordinator leaves it

        var coordinator = await StartWithClockAsync(Options(), log, time, a, b);
        await WaitUntilAsync(() => b.States[xb] == TestBranchState.Committed && a.Calls.Any(c => c.StartsWith("commit", StringComparison.Ordinal)));

        var rollback = await coordinator.ForceRollbackBranchAsync("a", xa);

        Assert.Equal(ForcedBranchStatus.Refused, rollback.Status);
        Assert.Contains("commit decision", rollback.Message, StringComparison.Ordinal);
        Assert.Equal(TestBranchState.Prepared, a.States[xa]);
        Assert.DoesNotContain(a.Calls, c => c.StartsWith("rollback", StringComparison.Ordinal));

        // A forced commit agrees with the decision and carries its recovery data.
        a.CommitFailuresRemaining = 0;
        var commit = await coordinator.ForceCommitBranchAsync("a", xa);
        Assert.True(commit.Succeeded, commit.Message);
        Assert.Equal("ra", System.Text.Encoding.UTF8.GetString(a.CommittedRecoveryData[xa]));
        await StopNowAsync(coordinator);
    }

    [Fact]
    public async Task Item11_after_a_node_id_change_a_heuristic_of_the_old_id_refuses_a_forced_rollback_and_a_forced_commit_carries_its_recovery_data()
    {
        var log = new InMemoryTransactionLog();
        var a = new ScriptedResourceManager("a");
        var id = new GlobalTransactionId(NodeId.Parse("node-old"), 5, 3);
        var xa = Xid.ForBranch(id, 1);
        a.AddPrepared(xa);
        await log.OpenAsync(default);
        await log.LogHeuristicAsync(new HeuristicRecord(id, DateTimeOffset.UnixEpoch, OutcomeKind.HeuristicHazard, "the commit callback failed", [new HeuristicBranch("a", xa, null, "http://participant/twopc"u8.ToArray())]));
        await log.DisposeAsync(); // seeded by hand: closed, as a stopped coordinator leaves it
        await using var coordinator = await StartAsync(log, a);

        var rollback = await coordinator.ForceRollbackBranchAsync("a", xa);
        Assert.Equal(ForcedBranchStatus.Refused, rollback.Status);
        Assert.Contains("HeuristicHazard", rollback.Message, StringComparison.Ordinal);
        Assert.Equal(TestBranchState.Prepared, a.States[xa]);

        var commit = await coordinator.ForceCommitBranchAsync("a", xa);
        Assert.True(commit.Succeeded, commit.Message);
        Assert.Equal("http://participant/twopc", System.Text.Encoding.UTF8.GetString(a.CommittedRecoveryData[xa]));
    }

    [Fact]
    public async Task An_unknown_resource_manager_is_reported_and_nothing_is_registered()
    {
        var a = new ScriptedResourceManager("a");
        await using var coordinator = await StartAsync(new InMemoryTransactionLog(), a);
        var xid = Xid.ForBranch(new GlobalTransactionId(Node, 0, 1), 1);

        var result = await coordinator.ForceRollbackBranchAsync("nope", xid);

        Assert.Equal(ForcedBranchStatus.UnknownResourceManager, result.Status);
        Assert.Contains("\"nope\"", result.Message, StringComparison.Ordinal);
        Assert.Equal(["a"], coordinator.ResourceManagers.Select(r => r.Name));
    }

    [Fact]
    public async Task The_resolver_supplies_an_unregistered_resource_manager_for_a_forced_action_and_it_stays_registered()
    {
        var late = new ScriptedResourceManager("late");
        var orphan = Xid.ForBranch(new GlobalTransactionId(Node, 0, 2), 1);
        late.AddPrepared(orphan);
        var coordinator = new TransactionCoordinator(Options(), new InMemoryTransactionLog())
        {
            ResourceManagerResolver = name => name switch
            {
                "late" => late,
                "liar" => new ScriptedResourceManager("someone-else"),
                _ => null,
            },
        };
        await using var _ = coordinator;
        await coordinator.StartAsync();

        var result = await coordinator.ForceRollbackBranchAsync("late", orphan);
        var liar = await coordinator.ForceRollbackBranchAsync("liar", orphan);

        Assert.True(result.Succeeded, result.Message);
        Assert.Equal(TestBranchState.RolledBack, late.States[orphan]);
        Assert.Same(late, Assert.Single(coordinator.ResourceManagers));
        Assert.Equal(ForcedBranchStatus.UnknownResourceManager, liar.Status);
    }

    [Fact]
    public async Task A_restarted_coordinator_redrives_a_decision_whose_resource_manager_only_the_resolver_knows()
    {
        var log = new InMemoryTransactionLog();
        var a = new ScriptedResourceManager("a");
        var remote = new ScriptedResourceManager("remote-7");
        var id = new GlobalTransactionId(Node, 1, 3);
        var (xa, xr) = (Xid.ForBranch(id, 1), Xid.ForBranch(id, 2));
        a.AddPrepared(xa);
        remote.AddPrepared(xr);
        await log.OpenAsync(default);
        await log.LogCommitDecisionAsync(new CommitDecision(id, DateTimeOffset.UtcNow, [new LoggedBranch("a", xa, default), new LoggedBranch("remote-7", xr, "http://callback"u8.ToArray())]));
        await log.DisposeAsync(); // seeded by hand: closed, as a stopped coordinator leaves it
        var asked = new List<string>();

        var coordinator = new TransactionCoordinator(Options(), log, [a])
        {
            ResourceManagerResolver = name =>
            {
                lock (asked)
                {
                    asked.Add(name);
                }

                return name == "remote-7" ? remote : null;
            },
        };
        await using var _ = coordinator;
        await coordinator.StartAsync();

        Assert.Equal(TransactionState.Committed, await WaitForEndAsync(coordinator, id));
        Assert.Equal(TestBranchState.Committed, remote.States[xr]);
        Assert.Equal("http://callback", System.Text.Encoding.UTF8.GetString(remote.CommittedRecoveryData[xr]));
        Assert.Empty(log.Decisions);
        Assert.Contains(remote, coordinator.ResourceManagers);
        lock (asked)
        {
            Assert.Equal(["remote-7"], asked.Distinct());
        }
    }

    [Fact]
    public async Task In_doubt_comes_from_the_last_pass_without_a_new_scan_and_ages_with_the_clock()
    {
        var time = new FakeTimeProvider();
        var a = new ScriptedResourceManager("a");
        var foreign = Xid.ForBranch(new GlobalTransactionId(NodeId.Parse("node-b"), 1, 1), 1);
        a.AddPrepared(foreign);
        var coordinator = await StartWithClockAsync(Options(), new InMemoryTransactionLog(), time, a);
        var scans = a.Calls.Count(c => c == "recover");

        time.Advance(TimeSpan.FromMinutes(5));
        var entry = Assert.Single(coordinator.GetInDoubt());

        Assert.Equal((foreign, InDoubtResolution.Foreign), (entry.Xid, entry.Resolution));
        Assert.True(entry.Age >= TimeSpan.FromMinutes(5), $"age {entry.Age}");
        Assert.Equal(scans, a.Calls.Count(c => c == "recover"));
        Assert.Equal(1, coordinator.InDoubtBranches);
        await coordinator.DisposeAsync();
    }

    [Fact]
    public async Task Forced_actions_are_counted_by_action_and_outcome()
    {
        using var meters = new TestMeterFactory();
        var counted = new List<(long Value, string? Action, string? Outcome)>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (meters.Created.Contains(instrument.Meter) && instrument.Name == "twopc.branches.forced")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            string? action = null, outcome = null;
            foreach (var tag in tags)
            {
                action = tag.Key == "action" ? tag.Value as string : action;
                outcome = tag.Key == "outcome" ? tag.Value as string : outcome;
            }

            lock (counted)
            {
                counted.Add((value, action, outcome));
            }
        });
        listener.Start();
        var a = new ScriptedResourceManager("a");
        var orphan = Xid.ForBranch(new GlobalTransactionId(Node, 0, 5), 1);
        a.AddPrepared(orphan);
        var coordinator = new TransactionCoordinator(Options(), new InMemoryTransactionLog(), [a], meterFactory: meters);
        await using var _ = coordinator;
        await coordinator.StartAsync();

        await coordinator.ForceCommitBranchAsync("a", orphan);
        await coordinator.ForceRollbackBranchAsync("a", orphan);
        await coordinator.ForceRollbackBranchAsync("missing", orphan);

        lock (counted)
        {
            Assert.Equal(
                [(1L, "commit", "refused"), (1L, "rollback", "rolled_back"), (1L, "rollback", "unknown_resource_manager")],
                counted);
        }
    }

    private static async Task<TransactionCoordinator> StartWithClockAsync(TransactionCoordinatorOptions options, InMemoryTransactionLog log, TimeProvider time, params IResourceManager[] resourceManagers)
    {
        var coordinator = new TransactionCoordinator(options, log, resourceManagers, timeProvider: time);
        await coordinator.StartAsync();
        return coordinator;
    }

    /// <summary>Stops a coordinator whose phase 2 is stuck without waiting out the shutdown grace.</summary>
    private static async Task StopNowAsync(TransactionCoordinator coordinator)
    {
        using var now = new CancellationTokenSource();
        await now.CancelAsync();
        await coordinator.StopAsync(now.Token);
        await coordinator.DisposeAsync();
    }

    private static Task WaitUntilAsync(Func<bool> condition) => Eventually.TrueAsync(condition, TimeSpan.FromSeconds(10));

    private sealed class TestMeterFactory : IMeterFactory
    {
        public List<Meter> Created { get; } = [];

        public Meter Create(MeterOptions options)
        {
            var meter = new Meter(options);
            Created.Add(meter);
            return meter;
        }

        public void Dispose()
        {
            foreach (var meter in Created)
            {
                meter.Dispose();
            }
        }
    }
}
