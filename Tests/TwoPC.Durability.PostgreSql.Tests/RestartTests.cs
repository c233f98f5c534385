using System.Collections.Concurrent;
using TwoPC.TestServers;
using TwoPC.Transactions;
using static TwoPC.Durability.PostgreSql.Tests.Records;

namespace TwoPC.Durability.PostgreSql.Tests;

/// <summary>PostgreSQL crashes (pg_ctl stop -m immediate) and restarts under load: on a server of the test's own.</summary>
public sealed class RestartTests
{
    [Fact]
    public async Task A_server_crash_under_concurrent_writes_loses_no_acknowledged_decision_and_the_log_keeps_working()
    {
        await using var server = await PostgresServer.StartAsync(PostgresFixture.Options);
        var db = await server.CreateDatabaseAsync();
        var acknowledged = new ConcurrentBag<GlobalTransactionId>();
        var failures = new ConcurrentBag<Exception>();
        ulong epoch;
        await using (var log = Log(db, retryTimeout: TimeSpan.FromSeconds(60)))
        {
            epoch = (await log.OpenAsync(NodeA, CancellationToken.None)).Epoch;
            var next = 0L;
            using var stop = new CancellationTokenSource();
            var writers = Enumerable.Range(0, 16).Select(_ => Task.Run(async () =>
            {
                while (!stop.IsCancellationRequested)
                {
                    var id = Id((ulong)Interlocked.Increment(ref next), NodeA, epoch);
                    try
                    {
                        await log.LogCommitDecisionAsync(Decision(id));
                        acknowledged.Add(id);
                    }
                    catch (Exception ex)
                    {
                        failures.Add(ex);
                        return;
                    }
                }
            })).ToArray();

            await EventuallyAsync(() => Task.FromResult(acknowledged.Count >= 500), "500 decisions were acknowledged before the crash");
            await server.RestartImmediateAsync();
            var afterRestart = acknowledged.Count;
            await EventuallyAsync(() => Task.FromResult(acknowledged.Count >= afterRestart + 500 || !failures.IsEmpty), "500 more decisions were acknowledged after the restart");
            await stop.CancelAsync();
            await Task.WhenAll(writers);

            Assert.Empty(failures);
            Assert.Null(log.Failure);

            // The lease survived the crash too: it is renewed on the restarted server.
            var renewed = log.Lease!.ExpiresAt;
            await EventuallyAsync(() => Task.FromResult(log.Lease!.ExpiresAt > renewed), "the lease was renewed after the restart");
        }

        await using var restarted = Log(db);
        var state = await restarted.OpenAsync(NodeA, CancellationToken.None);
        var pending = state.PendingDecisions.Select(d => d.TransactionId).ToHashSet();
        Assert.All(acknowledged, id => Assert.Contains(id, pending));
        Assert.Equal(epoch + 1, state.Epoch);
    }
}
