using Dapper;
using Npgsql;
using TwoPC.Durability;
using TwoPC.Participants.PostgreSql.Tests.Infrastructure;
using TwoPC.Protocol;
using TwoPC.Testing;
using TwoPC.Transactions;

namespace TwoPC.Participants.PostgreSql.Tests.LastResource;

/// <summary>
/// The last-resource commit on real PostgreSQL (issue 13, item 1): "orders" (A) is enlisted first and is the last
/// resource, "payments" (B) is prepared. Assertions read pg_prepared_xacts, the marker table and the round trips the
/// data sources sent — never timing.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class LastResourceCommitTests(PostgresFixture fixture)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task Two_databases_commit_with_one_prepare_one_marker_commit_and_one_commit_prepared()
    {
        await using var dbs = await LastResourceDatabases.CreateAsync(fixture);
        (long PreparedA, long PreparedB, string? Marker)? atDecision = null;
        var coordinator = await dbs.StartCoordinatorAsync(o => o.StepHook = async (step, id, _) =>
        {
            if (step == ProtocolStep.AfterMarkerCommit)
            {
                atDecision = (await dbs.A.PreparedAsync(), await dbs.B.PreparedAsync(), await dbs.A.MarkerAsync(id));
            }
        });
        var (tx, _, _) = await dbs.BeginIncrementAsync(coordinator);
        dbs.A.Statements.Clear();
        dbs.B.Statements.Clear();
        var warningsBefore = NoTransactionWarnings();

        var outcome = await tx.CommitAsync();

        Assert.Equal(OutcomeKind.Committed, outcome.Kind);
        Assert.Equal((0L, 1L, "C"), atDecision); // the decision: A committed with its marker, B still prepared
        Assert.Equal((1, 1), await dbs.ValuesAsync());
        var a = dbs.A.Statements.ToArray();
        var b = dbs.B.Statements.ToArray();
        var describe = "A:\n" + string.Join("\n", a) + "\nB:\n" + string.Join("\n", b);
        Assert.True(!a.Any(s => s.Contains("PREPARE TRANSACTION", StringComparison.Ordinal)), describe);
        Assert.True(1 == a.Count(s => s.StartsWith("INSERT INTO twopc.commit_markers", StringComparison.Ordinal) && s.EndsWith(" ; COMMIT", StringComparison.Ordinal)), describe);
        Assert.True(1 == b.Count(s => s.Contains("PREPARE TRANSACTION", StringComparison.Ordinal)), describe);
        Assert.True(1 == b.Count(s => s.StartsWith("COMMIT PREPARED", StringComparison.Ordinal)), describe);
        Assert.Equal(0L, await dbs.B.PreparedAsync());
        Assert.Equal(0L, await dbs.B.MarkerCountAsync());

        // Markers are deleted in batches, off the hot path.
        await Eventually.TrueAsync(async () => await dbs.A.MarkerAsync(tx.Id) is null, Wait);

        // Npgsql saw the COMMIT sent in the batch: returning the connection sent no ROLLBACK after it (a round trip).
        Assert.Equal(warningsBefore, NoTransactionWarnings());
    }

    [Fact]
    public async Task A_last_resource_whose_other_branch_read_nothing_commits_alone_and_reports_both_branches()
    {
        await using var dbs = await LastResourceDatabases.CreateAsync(fixture);
        var coordinator = await dbs.StartCoordinatorAsync();
        var tx = coordinator.Begin();
        var a = await dbs.A.Rm.EnlistAsync(tx);
        await a.Connection.ExecuteAsync("UPDATE items SET value = value + 1 WHERE id = 1", transaction: a.Transaction);
        var b = await dbs.B.Rm.EnlistAsync(tx);
        Assert.Equal(0, await b.Connection.ExecuteScalarAsync<int>("SELECT value FROM items WHERE id = 1", transaction: b.Transaction));

        var outcome = await tx.CommitAsync();

        Assert.Equal(OutcomeKind.Committed, outcome.Kind);
        Assert.Equal(2, outcome.Branches.Count);
        Assert.Equal((null, Participants.BranchOutcome.Committed), (outcome.Branches[0].Vote, outcome.Branches[0].Outcome));
        Assert.Equal(Participants.VoteKind.ReadOnly, outcome.Branches[1].Vote);
        Assert.Equal((1, 0), await dbs.ValuesAsync());
        Assert.Null(await dbs.A.MarkerAsync(tx.Id)); // alone, its one-phase commit needs no marker
    }

    private int NoTransactionWarnings()
    {
        using var stream = new FileStream(fixture.Server.LogFile, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        using var reader = new StreamReader(stream);
        var text = reader.ReadToEnd();
        var count = 0;
        for (var at = text.IndexOf("there is no transaction in progress", StringComparison.Ordinal); at >= 0; at = text.IndexOf("there is no transaction in progress", at + 1, StringComparison.Ordinal))
        {
            count++;
        }

        return count;
    }

    [Fact]
    public async Task A_no_vote_rolls_the_last_resource_back_without_a_marker()
    {
        await using var dbs = await LastResourceDatabases.CreateAsync(fixture);
        var coordinator = await dbs.StartCoordinatorAsync();
        var tx = coordinator.Begin();
        var a = await dbs.A.Rm.EnlistAsync(tx);
        await a.Connection.ExecuteAsync("UPDATE items SET value = value + 1 WHERE id = 1", transaction: a.Transaction);
        var b = await dbs.B.Rm.EnlistAsync(tx);

        // PREPARE refuses a transaction that touched a temporary table: a No vote.
        await b.Connection.ExecuteAsync("CREATE TEMP TABLE scratch (x int); UPDATE items SET value = value + 1 WHERE id = 1", transaction: b.Transaction);

        var outcome = await tx.CommitAsync();

        Assert.Equal(OutcomeKind.RolledBack, outcome.Kind);
        Assert.Contains("voted no", outcome.Reason, StringComparison.Ordinal);
        Assert.Equal((0, 0), await dbs.ValuesAsync());
        Assert.Equal((0L, 0L), (await dbs.A.PreparedAsync(), await dbs.B.PreparedAsync()));
        Assert.Null(await dbs.A.MarkerAsync(tx.Id));
    }

    [Fact]
    public async Task A_deadline_passed_on_the_server_clock_is_refused_and_every_branch_rolled_back()
    {
        // The coordinator's clock is an hour behind the server's: by its own clock the deadline is far away, by the
        // server's it passed long ago. The marker INSERT reads the server's clock.
        var behind = new ShiftedClock(TimeSpan.FromHours(-1));
        await using var dbs = await LastResourceDatabases.CreateAsync(fixture);
        var coordinator = await dbs.StartCoordinatorAsync(clock: behind);
        var (tx, _, _) = await dbs.BeginIncrementAsync(coordinator);

        var outcome = await tx.CommitAsync();

        Assert.Equal(OutcomeKind.RolledBack, outcome.Kind);
        Assert.Contains("deadline passed on the server's clock", outcome.Reason, StringComparison.Ordinal);
        Assert.Equal((0, 0), await dbs.ValuesAsync());
        Assert.Equal((0L, 0L), (await dbs.A.PreparedAsync(), await dbs.B.PreparedAsync()));
        Assert.Null(await dbs.A.MarkerAsync(tx.Id));
    }

    [Fact]
    public async Task A_fence_before_the_marker_commit_makes_the_late_commit_fail_and_roll_back()
    {
        await using var dbs = await LastResourceDatabases.CreateAsync(fixture);
        MarkerState? fenced = null;
        var coordinator = await dbs.StartCoordinatorAsync(o => o.StepHook = async (step, id, _) =>
        {
            if (step == ProtocolStep.BeforeMarkerCommit)
            {
                fenced = await dbs.A.Rm.FenceAsync(id, default); // recovery got there first
            }
        });
        var (tx, _, _) = await dbs.BeginIncrementAsync(coordinator);

        var outcome = await tx.CommitAsync();

        Assert.Equal(MarkerState.Aborted, fenced);
        Assert.Equal(OutcomeKind.RolledBack, outcome.Kind);
        Assert.Contains("fenced", outcome.Reason, StringComparison.Ordinal);
        Assert.Equal((0, 0), await dbs.ValuesAsync());
        Assert.Equal((0L, 0L), (await dbs.A.PreparedAsync(), await dbs.B.PreparedAsync()));
        Assert.Equal("A", await dbs.A.MarkerAsync(tx.Id));
    }

    [Fact]
    public async Task A_fence_after_the_marker_commit_reads_committed_and_the_transaction_commits()
    {
        await using var dbs = await LastResourceDatabases.CreateAsync(fixture);
        MarkerState? fenced = null;
        var coordinator = await dbs.StartCoordinatorAsync(o => o.StepHook = async (step, id, _) =>
        {
            if (step == ProtocolStep.AfterMarkerCommit)
            {
                fenced = await dbs.A.Rm.FenceAsync(id, default);
            }
        });
        var (tx, _, _) = await dbs.BeginIncrementAsync(coordinator);

        var outcome = await tx.CommitAsync();

        Assert.Equal(MarkerState.Committed, fenced);
        Assert.Equal(OutcomeKind.Committed, outcome.Kind);
        Assert.Equal((1, 1), await dbs.ValuesAsync());
        Assert.Equal(0L, await dbs.B.PreparedAsync());
    }

    [Fact]
    public async Task A_fence_waits_for_a_marker_insert_in_flight_and_reads_committed_when_it_commits()
    {
        await using var dbs = await LastResourceDatabases.CreateAsync(fixture);
        var coordinator = await dbs.StartCoordinatorAsync();
        var (tx, _, _) = await dbs.BeginIncrementAsync(coordinator);
        Task<MarkerState>? fence = null;
        dbs.A.Rm.BetweenMarkerInsertAndCommit = async _ =>
        {
            // The marker is inserted, not committed: the fence blocks on the primary key until the COMMIT.
            fence = dbs.A.Rm.FenceAsync(tx.Id, default).AsTask();
            await WaitForFenceBlockedAsync(dbs.A.DataSource);
        };

        var outcome = await tx.CommitAsync();

        Assert.Equal(OutcomeKind.Committed, outcome.Kind);
        Assert.Equal(MarkerState.Committed, await fence!.WaitAsync(Wait));
        Assert.Equal((1, 1), await dbs.ValuesAsync());
    }

    [Fact]
    public async Task The_last_resource_killed_between_insert_and_commit_is_fenced_aborted_and_everything_rolls_back()
    {
        await using var dbs = await LastResourceDatabases.CreateAsync(fixture);
        var coordinator = await dbs.StartCoordinatorAsync();
        var (tx, a, _) = await dbs.BeginIncrementAsync(coordinator);
        Task<MarkerState>? fence = null;
        dbs.A.Rm.BetweenMarkerInsertAndCommit = async branch =>
        {
            fence = dbs.A.Rm.FenceAsync(tx.Id, default).AsTask();
            await WaitForFenceBlockedAsync(dbs.A.DataSource);

            // L's backend dies with the marker uncommitted: the fence inserts 'A'; the COMMIT's answer is lost, and the
            // coordinator's own fence (R3) reads 'A'.
            await using var admin = await dbs.A.DataSource.OpenConnectionAsync();
            await admin.ExecuteAsync("SELECT pg_terminate_backend(@pid)", new { pid = branch.SessionId });
        };

        var outcome = await tx.CommitAsync();

        Assert.Equal(MarkerState.Aborted, await fence!.WaitAsync(Wait));
        Assert.Equal(OutcomeKind.RolledBack, outcome.Kind);
        Assert.Contains("fence found it did not commit", outcome.Reason, StringComparison.Ordinal);
        Assert.Equal((0, 0), await dbs.ValuesAsync());
        Assert.Equal((0L, 0L), (await dbs.A.PreparedAsync(), await dbs.B.PreparedAsync()));
        Assert.Equal("A", await dbs.A.MarkerAsync(tx.Id));
    }

    [Fact]
    public async Task R1_after_a_restart_the_committed_marker_commits_the_prepared_branch_and_is_deleted()
    {
        await using var dbs = await LastResourceDatabases.CreateAsync(fixture);
        var coordinator = await dbs.StartCoordinatorAsync(o => o.StepHook = (step, _, _) =>
            step == ProtocolStep.AfterMarkerCommit ? throw new InvalidOperationException("crashed after the marker commit") : ValueTask.CompletedTask);
        var (tx, _, _) = await dbs.BeginIncrementAsync(coordinator);
        await Assert.ThrowsAsync<InvalidOperationException>(() => tx.CommitAsync());
        Assert.Equal((1, 0), await dbs.ValuesAsync());
        Assert.Equal((0L, 1L, "C"), (await dbs.A.PreparedAsync(), await dbs.B.PreparedAsync(), await dbs.A.MarkerAsync(tx.Id)));

        // A new coordinator on the same log: the log has no decision, the marker does.
        await dbs.StartCoordinatorAsync();

        await Eventually.TrueAsync(async () => await dbs.B.PreparedAsync() == 0 && await dbs.A.MarkerAsync(tx.Id) is null, Wait);
        Assert.Equal((1, 1), await dbs.ValuesAsync());
    }

    [Fact]
    public async Task R2_after_a_restart_an_orphan_is_fenced_and_rolled_back_and_the_late_commit_is_refused()
    {
        await using var dbs = await LastResourceDatabases.CreateAsync(fixture);
        var coordinator = await dbs.StartCoordinatorAsync(o => o.StepHook = (step, _, _) =>
            step == ProtocolStep.BeforeMarkerCommit ? throw new InvalidOperationException("paused before the marker commit") : ValueTask.CompletedTask);
        var (tx, a, _) = await dbs.BeginIncrementAsync(coordinator);
        await Assert.ThrowsAsync<InvalidOperationException>(() => tx.CommitAsync());
        Assert.Equal(1L, await dbs.B.PreparedAsync());

        var recovering = await dbs.StartCoordinatorAsync();
        await Eventually.TrueAsync(
            async () =>
            {
                await recovering.RecoverAsync();
                return await dbs.B.PreparedAsync() == 0;
            },
            Wait);
        Assert.Equal("A", await dbs.A.MarkerAsync(tx.Id));

        // The paused coordinator resumes: its last resource's commit with the marker hits the fence.
        var payload = TwoPhaseCommit.EncodePayload(new CommitDecision(tx.Id, DateTimeOffset.UtcNow, []));
        var late = await dbs.A.Rm.CommitWithMarkerAsync(a, tx.Id, tx.Deadline, payload, default);
        Assert.False(late.Committed);
        Assert.Contains("fenced", late.Reason, StringComparison.Ordinal);
        Assert.Equal((0, 0), await dbs.ValuesAsync());
    }

    [Fact]
    public async Task R1_never_redrives_the_markers_of_another_coordinator_node_sharing_the_database()
    {
        await using var dbs = await LastResourceDatabases.CreateAsync(fixture);
        var coordinator = await dbs.StartCoordinatorAsync();

        // Another node's transaction: its branch prepared in B, its committed marker in A (the table made by a fence).
        var other = GlobalTransactionId.Parse("other-node.1.1");
        var xid = Xid.Create(Xid.TwoPCFormatId, other.ToString(), "2.m" + LastResourceXid.Hash("orders").ToString("x8", System.Globalization.CultureInfo.InvariantCulture));
        await using (var c = await dbs.B.DataSource.OpenConnectionAsync())
        {
            await c.ExecuteAsync($"BEGIN; UPDATE items SET value = value + 1 WHERE id = 1; PREPARE TRANSACTION '{xid}'");
        }

        await dbs.A.Rm.FenceAsync(GlobalTransactionId.Parse("lrc-tests.1.ffff"), default);
        await using (var c = await dbs.A.DataSource.OpenConnectionAsync())
        {
            var payload = TwoPhaseCommit.EncodePayload(new CommitDecision(other, DateTimeOffset.UtcNow, [new LoggedBranch("payments", xid, default)]));
            await c.ExecuteAsync("INSERT INTO twopc.commit_markers (gtrid, state, deadline, payload) VALUES (@gtrid, 'C', now(), @payload)", new { gtrid = other.ToString(), payload = payload.ToArray() });
        }

        await coordinator.RecoverAsync();
        await coordinator.RecoverAsync();

        Assert.Equal(1L, await dbs.B.PreparedAsync()); // not ours to commit
        Assert.Equal("C", await dbs.A.MarkerAsync(other)); // nor to delete
        await using (var c = await dbs.B.DataSource.OpenConnectionAsync())
        {
            await c.ExecuteAsync($"ROLLBACK PREPARED '{xid}'");
        }
    }

    private static Task WaitForFenceBlockedAsync(NpgsqlDataSource dataSource) =>
        Eventually.TrueAsync(
            async () =>
            {
                await using var c = await dataSource.OpenConnectionAsync();
                return await c.ExecuteScalarAsync<long>(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%ON CONFLICT%'") == 1;
            },
            Wait);

    private sealed class ShiftedClock(TimeSpan shift) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => System.GetUtcNow() + shift;
    }
}
