using Dapper;
using TwoPC.Transactions;

namespace TwoPC.Participants.PostgreSql.Tests;

/// <summary>
/// Where a branch sets <c>SET LOCAL lock_timeout</c>: an enlisted branch leaves its deadline to the coordinator's timeout
/// reaper (no extra round trip; <see cref="PostgresFailureTests"/> shows the reaper ending a lock wait), a branch begun for a
/// remote coordinator bounds itself, and the option forces either way.
/// </summary>
[Collection("postgres")]
public sealed class LockWaitBoundTests(Infrastructure.PostgresFixture fixture)
{
    [Theory]
    [InlineData(null, false, true)]
    [InlineData(true, true, true)]
    [InlineData(false, false, false)]
    public async Task A_branch_bounds_its_lock_waits_where_no_reaper_does(bool? option, bool enlistedSetsIt, bool remoteSetsIt)
    {
        await using var db = await TwoDatabases.CreateAsync(fixture, new PostgresResourceManagerOptions { BoundLockWaitsByDeadline = option });
        var coordinator = await db.StartCoordinatorAsync();

        await using var tx = coordinator.Begin(TimeSpan.FromSeconds(30));
        var enlisted = await db.RmA.EnlistAsync(tx);
        var enlistedTimeout = await enlisted.Connection.QuerySingleAsync<string>("SHOW lock_timeout", transaction: enlisted.Transaction);

        var xid = Xid.ForBranch(tx.Id, 99);
        await using var remote = await db.RmB.BeginBranchAsync(xid, DateTimeOffset.UtcNow.AddSeconds(30));
        var remoteTimeout = await remote.Connection.QuerySingleAsync<string>("SHOW lock_timeout", transaction: remote.Transaction);

        Assert.Equal(enlistedSetsIt, enlistedTimeout != "0");
        Assert.Equal(remoteSetsIt, remoteTimeout != "0");
    }
}
