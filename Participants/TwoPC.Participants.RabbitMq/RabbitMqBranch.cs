using Microsoft.Extensions.Logging;
using TwoPC.Transactions;

namespace TwoPC.Participants.RabbitMq;

/// <summary>
/// The publishing branch of one global transaction. <see cref="Publish(OutgoingMessage)"/> only stages a message;
/// it is published when the global transaction commits, and never if it rolls back.
/// </summary>
public sealed class RabbitMqBranch : ITransactionBranch
{
    private readonly RabbitMqResourceManager _rm;
    private readonly ILogger _logger;
    private readonly List<OutgoingMessage> _staged = [];
    private readonly Lock _gate = new();
    private bool _closed;

    internal RabbitMqBranch(RabbitMqResourceManager rm, Xid xid, ILogger logger)
    {
        _rm = rm;
        Xid = xid;
        _logger = logger;
    }

    /// <summary>The branch's XID; message ids are derived from it.</summary>
    public Xid Xid { get; }

    /// <inheritdoc />
    public IResourceManager ResourceManager => _rm;

    /// <summary>The messages staged so far.</summary>
    public IReadOnlyList<OutgoingMessage> Staged
    {
        get
        {
            lock (_gate)
            {
                return [.. _staged];
            }
        }
    }

    /// <summary>
    /// Stages a message to publish when the global transaction commits. When an activity is current, its W3C trace
    /// context (<c>traceparent</c>, <c>tracestate</c>) is added to the message's headers unless they hold a
    /// <c>traceparent</c> already; the inbox consumer continues that trace.
    /// </summary>
    /// <exception cref="ArgumentException">The message cannot be published as AMQP (see <see cref="OutgoingMessage.FindProblem"/>), e.g. a routing key over 255 bytes of UTF-8; nothing was staged.</exception>
    /// <exception cref="InvalidOperationException">The branch is already preparing or finished.</exception>
    public void Publish(OutgoingMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        if (message.FindProblem() is { } problem)
        {
            throw new ArgumentException($"The message cannot be published: {problem}.", nameof(message));
        }

        // The trace context of the code that staged it travels in its headers (and in the logged decision).
        message = MessageTracing.WithTraceContext(message);
        lock (_gate)
        {
            if (_closed)
            {
                throw new InvalidOperationException($"Branch {Xid} no longer accepts messages: its transaction is completing.");
            }

            _staged.Add(message);
        }
    }

    /// <summary>Stages a message (see <see cref="Publish(OutgoingMessage)"/>).</summary>
    public void Publish(string exchange, string routingKey, ReadOnlyMemory<byte> body, IReadOnlyDictionary<string, string>? headers = null) =>
        Publish(new OutgoingMessage(exchange, routingKey, body, headers));

    /// <summary>
    /// No messages → read-only. Otherwise checks that every message can be encoded and every target exchange
    /// exists (otherwise a No vote, so the transaction rolls back cleanly with the reason) and votes yes with the messages as recovery data, so the commit decision makes them durable.
    /// </summary>
    public async ValueTask<Vote> PrepareAsync(CancellationToken cancellationToken)
    {
        OutgoingMessage[] messages;
        lock (_gate)
        {
            _closed = true;
            messages = [.. _staged];
        }

        if (messages.Length == 0)
        {
            return Vote.ReadOnly;
        }

        for (var i = 0; i < messages.Length; i++)
        {
            // Checked again here (not only in Publish): a message must never reach the decision if it cannot be sent.
            if ((messages[i].FindProblem() ?? OutgoingMessage.ShortStringProblem("message id", RabbitMqResourceManager.MessageId(Xid, i))) is { } problem)
            {
                var reason = $"message {i} cannot be published: {problem}";
                _logger.VotedNo(Xid, reason);
                return Vote.No(reason);
            }
        }

        if (await _rm.FindMissingExchangeAsync(messages.Select(m => m.Exchange), cancellationToken).ConfigureAwait(false) is { } missing)
        {
            var reason = $"exchange '{missing}' does not exist";
            _logger.VotedNo(Xid, reason);
            return Vote.No(reason);
        }

        var data = StagedMessages.Encode(messages);
        if (data.Length > Vote.MaxRecoveryDataLength)
        {
            var reason = $"the staged messages take {data.Length} bytes, more than the {Vote.MaxRecoveryDataLength} a branch may log";
            _logger.VotedNo(Xid, reason);
            return Vote.No(reason);
        }

        _logger.Prepared(Xid, messages.Length);
        return Vote.Yes(data);
    }

    /// <summary>
    /// Publishes now (with confirms). The coordinator never calls this for a publishing branch (its resource
    /// manager does not commit atomically, so even a lone branch is prepared and its decision logged).
    /// </summary>
    public async ValueTask<BranchOutcome> CommitOnePhaseAsync(CancellationToken cancellationToken)
    {
        OutgoingMessage[] messages;
        lock (_gate)
        {
            _closed = true;
            messages = [.. _staged];
        }

        return await _rm.PublishAsync(Xid, messages, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Drops the stage; nothing is published.</summary>
    public ValueTask<BranchOutcome> RollbackAsync(CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            _closed = true;
            _staged.Clear();
        }

        return ValueTask.FromResult(BranchOutcome.RolledBack);
    }
}
