using Npgsql;
using TwoPC.Durability;
using TwoPC.Participants;
using TwoPC.TestServers;
using TwoPC.Transactions;

namespace TwoPC.Durability.PostgreSql.Tests;

/// <summary>
/// One private PostgreSQL server shared by the test classes of the "postgres" collection; each test makes its own
/// database. The restart test starts a server of its own.
/// </summary>
public sealed class PostgresFixture : IAsyncLifetime
{
    private PostgresServer? _server;

    public PostgresServer Server => _server ?? throw new InvalidOperationException("The PostgreSQL fixture has not started.");

    public static PostgresServerOptions Options => new()
    {
        MaxConnections = 200,
        // Tests crash the server processes, not the machine: the page cache survives, so fsync adds only time.
        Fsync = false,
    };

    public async Task InitializeAsync() => _server = await PostgresServer.StartAsync(Options);

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }
}

[CollectionDefinition(Name)]
public sealed class PostgresCollection : ICollectionFixture<PostgresFixture>
{
    public const string Name = "postgres";
}

/// <summary>Records of the tests, and the log as the tests build it (short leases, short timeouts).</summary>
internal static class Records
{
    public static readonly NodeId NodeA = NodeId.Parse("node-a");
    public static readonly NodeId NodeB = NodeId.Parse("node-b");
    public static readonly NodeId NodeC = NodeId.Parse("node-c");

    public static GlobalTransactionId Id(ulong sequence, NodeId? node = null, ulong epoch = 7) => new(node ?? NodeA, epoch, sequence);

    public static CommitDecision Decision(ulong sequence, NodeId? node = null, ulong epoch = 7) => Decision(Id(sequence, node, epoch));

    public static CommitDecision Decision(GlobalTransactionId id) =>
        new(
            id,
            DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000 + (long)id.Sequence),
            Enumerable.Range(0, 2)
                .Select(b => new LoggedBranch($"rm-{b}-\u00e9", Xid.ForBranch(id, b), new byte[] { (byte)id.Sequence, (byte)(id.Sequence >> 8), (byte)b, 0xFF }))
                .ToArray());

    public static HeuristicRecord Heuristic(ulong sequence, NodeId? node = null) =>
        new(
            Id(sequence, node),
            DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_100_000 + (long)sequence),
            OutcomeKind.HeuristicMixed,
            $"branch rm-1 rolled back on its own ({sequence})",
            [
                new HeuristicBranch("rm-0", Xid.ForBranch(Id(sequence, node), 0), BranchOutcome.Committed, new byte[] { 1, 2 }),
                new HeuristicBranch("rm-1", Xid.ForBranch(Id(sequence, node), 1), BranchOutcome.RolledBack),
                new HeuristicBranch("rm-2", Xid.ForBranch(Id(sequence, node), 2), null),
            ]);

    public static void AssertSame(CommitDecision expected, CommitDecision actual)
    {
        Assert.Equal(expected.TransactionId, actual.TransactionId);
        Assert.Equal(expected.DecidedAt.ToUnixTimeMilliseconds(), actual.DecidedAt.ToUnixTimeMilliseconds());
        Assert.Equal(expected.Branches.Count, actual.Branches.Count);
        for (var i = 0; i < expected.Branches.Count; i++)
        {
            Assert.Equal(expected.Branches[i].ResourceManager, actual.Branches[i].ResourceManager);
            Assert.Equal(expected.Branches[i].Xid, actual.Branches[i].Xid);
            Assert.Equal(expected.Branches[i].RecoveryData.ToArray(), actual.Branches[i].RecoveryData.ToArray());
        }
    }

    public static void AssertSame(HeuristicRecord expected, HeuristicRecord actual)
    {
        Assert.Equal(expected.TransactionId, actual.TransactionId);
        Assert.Equal(expected.RecordedAt.ToUnixTimeMilliseconds(), actual.RecordedAt.ToUnixTimeMilliseconds());
        Assert.Equal(expected.Kind, actual.Kind);
        Assert.Equal(expected.Reason, actual.Reason);
        Assert.Equal(expected.Branches, actual.Branches);
    }

    public static PostgreSqlTransactionLog Log(string connectionString, TimeSpan? lease = null, TimeSpan? openTimeout = null, TimeSpan? retryTimeout = null)
    {
        var leaseDuration = lease ?? TimeSpan.FromSeconds(10);
        return new PostgreSqlTransactionLog(new PostgreSqlTransactionLogOptions
        {
            ConnectionString = connectionString,
            LeaseDuration = leaseDuration,
            RenewInterval = leaseDuration / 4,
            OpenTimeout = openTimeout ?? TimeSpan.FromSeconds(30),
            RetryTimeout = retryTimeout ?? TimeSpan.FromSeconds(30),
        });
    }

    /// <summary>Waits until <paramref name="condition"/> holds; fails the test after <paramref name="limit"/> (a bound, not a timing assertion).</summary>
    public static async Task EventuallyAsync(Func<Task<bool>> condition, string what, TimeSpan? limit = null)
    {
        using var timeout = new CancellationTokenSource(limit ?? TimeSpan.FromSeconds(60));
        while (!await condition())
        {
            if (timeout.IsCancellationRequested)
            {
                Assert.Fail($"Timed out waiting until {what}.");
            }

            await Task.Delay(50);
        }
    }

    public static async Task<object?> ScalarAsync(string connectionString, string sql, params object[] parameters)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        foreach (var p in parameters)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = p });
        }

        return await command.ExecuteScalarAsync();
    }

    /// <summary>Makes <paramref name="node"/>'s lease lapse now, as a node paused past its lease would find it.</summary>
    public static Task ExpireLeaseAsync(string connectionString, NodeId node) =>
        ScalarAsync(connectionString, "UPDATE twopc.nodes SET expires_at = now() - interval '1 second' WHERE node_id = $1", node.Value);
}
