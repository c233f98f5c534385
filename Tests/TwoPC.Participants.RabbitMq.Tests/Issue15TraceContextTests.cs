using System.Diagnostics;
using System.Text;
using TwoPC.Diagnostics;
using TwoPC.Participants.RabbitMq.Tests.Infrastructure;
using TwoPC.Testing;
using TwoPC.Transactions;

namespace TwoPC.Participants.RabbitMq.Tests;

/// <summary>Issue 15 item 10: W3C trace context travels from the code that stages a message to the inbox consumer that handles it.</summary>
[Collection("rabbitmq")]
public sealed class Issue15TraceContextTests(RabbitMqFixture fixture)
{
    private static readonly ActivitySource Application = new("TwoPC.Tests.Application");

    [Fact]
    public async Task The_consumer_span_is_a_child_of_the_span_that_published_the_message()
    {
        using var listener = Listen();
        await using var world = await MessagingWorld.CreateAsync(fixture);

        Activity? handlerActivity = null;
        var handled = new TaskCompletionSource();
        await using var consumer = await InboxConsumer.StartAsync(world.Connection, world.Database, new InboxConsumerOptions { Queue = world.Queue }, (message, _, _, _) =>
        {
            handlerActivity = Activity.Current;
            handled.TrySetResult();
            return Task.CompletedTask;
        });

        string publisherTraceId, publisherSpanId;
        using (var placeOrder = Application.StartActivity("place order"))
        {
            Assert.NotNull(placeOrder);
            (publisherTraceId, publisherSpanId) = (placeOrder.TraceId.ToHexString(), placeOrder.SpanId.ToHexString());
            await using var tx = world.Coordinator.Begin();
            world.Rabbit.Enlist(tx).Publish(world.Exchange, "order.placed", "order 1"u8.ToArray());
            await tx.CommitAsync();
        }

        await handled.Task.WaitAsync(TimeSpan.FromSeconds(30));
        var process = handlerActivity;
        Assert.NotNull(process);
        Assert.Equal(TwoPCTelemetry.ActivitySourceName, process.Source.Name);
        Assert.Equal(ActivityKind.Consumer, process.Kind);
        Assert.Equal("process " + world.Queue, process.OperationName);
        Assert.Equal(publisherTraceId, process.TraceId.ToHexString());
        Assert.Equal(publisherSpanId, process.ParentSpanId.ToHexString());
        Assert.True(process.HasRemoteParent);
        Assert.Equal("rabbitmq", process.GetTagItem("messaging.system"));
        Assert.Equal("process", process.GetTagItem("messaging.operation.type"));
        Assert.Equal(world.Exchange, process.GetTagItem("messaging.destination.name"));
        Assert.Equal("order.placed", process.GetTagItem("messaging.rabbitmq.destination.routing_key"));
        Assert.EndsWith(".0", (string)process.GetTagItem("messaging.message.id")!, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_trace_context_is_in_the_published_headers_and_in_the_logged_recovery_data()
    {
        using var listener = Listen();
        await using var world = await MessagingWorld.CreateAsync(fixture);

        string traceParent;
        RabbitMqBranch branch;
        using (var placeOrder = Application.StartActivity("place order"))
        {
            Assert.NotNull(placeOrder);
            placeOrder.TraceStateString = "vendor=abc";
            traceParent = placeOrder.Id!;
            await using var tx = world.Coordinator.Begin();
            branch = world.Rabbit.Enlist(tx);
            branch.Publish(world.Exchange, "order.placed", "order 1"u8.ToArray(), new Dictionary<string, string> { ["tenant"] = "t1" });
            await tx.CommitAsync();
        }

        // What the decision logs (the branch's recovery data) carries the context, so a recovered publish keeps it.
        var logged = StagedMessages.Decode(StagedMessages.Encode(branch.Staged));
        Assert.Equal(traceParent, logged[0].Headers!["traceparent"]);
        Assert.Equal("vendor=abc", logged[0].Headers!["tracestate"]);
        Assert.Equal("t1", logged[0].Headers!["tenant"]);

        List<(string? MessageId, string Body, IDictionary<string, object?>? Headers, bool Persistent)> messages = [];
        await Eventually.TrueAsync(async () => (messages = await world.DrainAsync()).Count == 1, TimeSpan.FromSeconds(30));
        Assert.Equal(traceParent, Encoding.UTF8.GetString((byte[])messages[0].Headers!["traceparent"]!));
        Assert.Equal("vendor=abc", Encoding.UTF8.GetString((byte[])messages[0].Headers!["tracestate"]!));
    }

    [Fact]
    public void A_message_staged_with_no_current_activity_or_its_own_traceparent_is_left_as_it_is()
    {
        using var listener = Listen();
        var plain = new OutgoingMessage("ex", "key", "x"u8.ToArray());
        Assert.Same(plain, MessageTracing.WithTraceContext(plain));

        using var activity = Application.StartActivity("place order");
        var own = new OutgoingMessage("ex", "key", "x"u8.ToArray(), new Dictionary<string, string> { ["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" });
        Assert.Same(own, MessageTracing.WithTraceContext(own));

        // A record logged before trace context existed (no such headers) still decodes as it was.
        var old = StagedMessages.Decode(StagedMessages.Encode([plain]));
        Assert.Null(old[0].Headers);
    }

    private static ActivityListener Listen()
    {
        var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name is TwoPCTelemetry.ActivitySourceName or "TwoPC.Tests.Application",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
        };
        ActivitySource.AddActivityListener(listener);
        return listener;
    }
}
