using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using TwoPC.Participants;
using TwoPC.Protocol;
using TwoPC.Testing;
using TwoPC.Transactions;

namespace TwoPC.Tests.Protocol;

public sealed class BranchCallsTests
{
    [Fact]
    public async Task Item22_a_resource_that_waited_out_its_call_for_its_connection_is_retried_after_the_base_delay_not_the_growing_backoff()
    {
        // Six calls in a row end with "unreachable" (the resource waited for its connection until the call's
        // deadline), then the connection is back. Retried after the base delay each time, the commit is through
        // after six base delays; an exponential backoff would still be waiting (1 + 2 + 4 + ... seconds).
        var time = new FakeTimeProvider();
        var options = CoordinatorFixture.Options();
        options.RetryBaseDelay = TimeSpan.FromSeconds(1);
        options.RetryMaxDelay = TimeSpan.FromHours(1);
        options.BranchCallTimeout = TimeSpan.FromHours(1);
        var calls = new BranchCalls(options, NullLogger.Instance, time);
        var failures = 0;
        var rm = new ScriptedResourceManager("mq")
        {
            BeforeCommit = (_, _) => Interlocked.Increment(ref failures) <= 6
                ? Task.FromException(new ResourceUnavailableException("the broker is unreachable"))
                : Task.CompletedTask,
        };
        var xid = Xid.ForBranch(new GlobalTransactionId(NodeId.Parse("node-a"), 1, 1), 1);

        var commit = calls.CommitAsync("mq", () => rm, xid, default, CancellationToken.None).AsTask();
        for (var attempt = 1; attempt <= 6; attempt++)
        {
            await Eventually.TrueAsync(() => Task.FromResult(rm.Calls.Count >= attempt), TimeSpan.FromSeconds(10));
            await Task.Delay(20); // let the retry schedule its delay on the fake clock
            time.Advance(TimeSpan.FromSeconds(1));
        }

        Assert.Equal(BranchOutcome.Committed, await commit.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(7, rm.Calls.Count);
    }
}
