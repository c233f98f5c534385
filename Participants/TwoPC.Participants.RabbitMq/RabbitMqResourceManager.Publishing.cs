using System.Text;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;
using TwoPC.Transactions;

namespace TwoPC.Participants.RabbitMq;

// Phase 2: publishing a branch's staged messages with confirms, per-message progress across attempts, and parking the
// undeliverable.
public sealed partial class RabbitMqResourceManager
{
    internal async Task<BranchOutcome> PublishAsync(Xid xid, IReadOnlyList<OutgoingMessage> messages, CancellationToken cancellationToken)
    {
        if (messages.Count == 0)
        {
            return BranchOutcome.Committed;
        }

        // What this commit achieved in earlier attempts (in this process): a retry publishes only the rest.
        var progress = _commits.AddOrUpdate(xid, static (_, count) => new CommitProgress(count), static (_, existing, count) => existing.Count == count ? existing : new CommitProgress(count), messages.Count);
        await progress.Gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var outcome = await PublishPendingAsync(xid, messages, progress, cancellationToken).ConfigureAwait(false);
            _commits.TryRemove(KeyValuePair.Create(xid, progress));
            return outcome;
        }
        finally
        {
            progress.Gate.Release();
        }
    }

    private async Task<BranchOutcome> PublishPendingAsync(Xid xid, IReadOnlyList<OutgoingMessage> messages, CommitProgress progress, CancellationToken cancellationToken)
    {
        // A message that cannot be encoded (a log written before Publish checked the limits) can never be
        // published: a definite failure, parked like an unroutable one, never retried.
        for (var i = 0; i < messages.Count; i++)
        {
            if (!progress.Confirmed[i] && progress.Problems[i] is null && messages[i].FindProblem() is { } problem)
            {
                progress.Problems[i] = "not publishable: " + problem;
            }
        }

        var pending = Enumerable.Range(0, messages.Count).Where(i => !progress.Confirmed[i] && progress.Problems[i] is null).ToList();
        if (pending.Count > 0)
        {
            if (_broker.Current is null)
            {
                _logger.WaitingForConnection(xid);
            }

            // An exchange deleted since prepare would close the channel on every attempt (404): park its
            // messages as undeliverable instead of retrying them forever.
            var missing = await FindMissingExchangesAsync(pending.Select(i => messages[i].Exchange), cancellationToken).ConfigureAwait(false);
            foreach (var i in pending.Where(i => missing.Contains(messages[i].Exchange)))
            {
                progress.Problems[i] = "not publishable: its exchange no longer exists";
            }

            pending.RemoveAll(i => progress.Problems[i] is not null);
        }

        if (pending.Count > 0)
        {
            await PublishBatchAsync(xid, messages, pending, progress, cancellationToken).ConfigureAwait(false);
        }

        var parked = 0;
        for (var i = 0; i < messages.Count; i++)
        {
            if (progress.Problems[i] is not { } problem)
            {
                continue;
            }

            if (!progress.Parked[i])
            {
                await ParkAsync(xid, messages[i], MessageId(xid, i), problem, cancellationToken).ConfigureAwait(false);
                progress.Parked[i] = true;
                _parked.Add(1);
                _logger.Parked(xid, MessageId(xid, i), messages[i].Exchange, messages[i].RoutingKey, problem, Options.ParkingQueue);
            }

            parked++;
        }

        if (parked > 0)
        {
            return BranchOutcome.Unknown;
        }

        _logger.Published(xid, messages.Count);
        return BranchOutcome.Committed;
    }

    /// <summary>Publishes the <paramref name="pending"/> messages on one channel, confirms tracked; records each definite answer in <paramref name="progress"/>.</summary>
    /// <exception cref="Exception">Some publish has an unknown outcome (no confirm): the coordinator retries; confirmed ones are kept.</exception>
    private async Task PublishBatchAsync(Xid xid, IReadOnlyList<OutgoingMessage> messages, List<int> pending, CommitProgress progress, CancellationToken cancellationToken)
    {
        var channel = await RentChannelAsync(cancellationToken).ConfigureAwait(false);
        var healthy = true;
        try
        {
            var publishes = new Task[pending.Count];
            for (var k = 0; k < pending.Count; k++)
            {
                if (Options.BeforePublish is { } hook)
                {
                    await hook(MessageId(xid, pending[k])).ConfigureAwait(false);
                }

                publishes[k] = PublishOneAsync(channel, messages[pending[k]], MessageId(xid, pending[k]), cancellationToken);
            }

            try
            {
                await Task.WhenAll(publishes).ConfigureAwait(false);
            }
            catch (Exception) when (publishes.All(p => p.IsCompleted))
            {
                // Each publish is judged on its own below.
            }

            // The client refusing to encode a message is a definite failure: nothing of it was sent. The
            // channel's confirm numbering after it cannot be trusted, so later confirms on it are not believed.
            var encodingFailed = Array.FindIndex(publishes, p => p.Exception?.InnerException is ArgumentException);
            Exception? uncertain = null;
            var confirmed = 0;
            for (var k = 0; k < pending.Count; k++)
            {
                var i = pending[k];
                var failure = publishes[k].IsCanceled ? new OperationCanceledException("the publish was cancelled before its confirm") : publishes[k].Exception?.InnerException;
                switch (failure)
                {
                    case null when encodingFailed < 0 || k < encodingFailed:
                        progress.Confirmed[i] = true;
                        confirmed++;
                        break;
                    case PublishReturnException returned:
                        progress.Problems[i] = $"returned as unroutable ({returned.ReplyCode} {returned.ReplyText})";
                        break;
                    case PublishException:
                        progress.Problems[i] = "nacked by the broker";
                        break;
                    case ArgumentException encoding:
                        progress.Problems[i] = "not publishable: the client library cannot encode it: " + encoding.Message;
                        break;
                    default:
                        uncertain ??= failure ?? new InvalidOperationException($"the confirm of message {MessageId(xid, i)} is in doubt: an earlier message on its channel could not be encoded");
                        break;
                }
            }

            _published.Add(confirmed);
            if (encodingFailed >= 0)
            {
                healthy = false;
            }

            if (uncertain is not null)
            {
                // No confirm: the outcome is unknown, so the coordinator retries with the same ids (only the unconfirmed).
                healthy = false;
                _logger.PublishUncertain(uncertain, xid);
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(uncertain);
            }
        }
        catch
        {
            healthy = false;
            throw;
        }
        finally
        {
            await ReturnChannelAsync(channel, healthy).ConfigureAwait(false);
        }
    }

    private static async Task PublishOneAsync(IChannel channel, OutgoingMessage message, string messageId, CancellationToken cancellationToken)
    {
        var properties = new BasicProperties
        {
            Persistent = true,
            MessageId = messageId,
            ContentType = message.ContentType,
            Type = message.Type,
        };
        if (message.Headers is { Count: > 0 } headers)
        {
            properties.Headers = headers.ToDictionary(h => h.Key, h => (object?)Encoding.UTF8.GetBytes(h.Value), StringComparer.Ordinal);
        }

        await channel.BasicPublishAsync(message.Exchange, message.RoutingKey, mandatory: true, properties, message.Body, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Parks one undeliverable message. If the parking queue refuses it (deleted: returned; or nacked), it is
    /// declared again and the parking tried once more; if that fails too, the failure is reported as a hazard
    /// and thrown, so the coordinator retries — only the parking: what was confirmed stays confirmed.
    /// </summary>
    private async Task ParkAsync(Xid xid, OutgoingMessage message, string messageId, string problem, CancellationToken cancellationToken)
    {
        var properties = new BasicProperties
        {
            Persistent = true,
            MessageId = messageId,
            // Only what can be encoded: the message may be parked precisely because a property is too long.
            ContentType = OutgoingMessage.ShortStringProblem("content type", message.ContentType) is null ? message.ContentType : null,
            Type = OutgoingMessage.ShortStringProblem("type", message.Type) is null ? message.Type : null,
            Headers = new Dictionary<string, object?>(StringComparer.Ordinal)
            {
                [ParkedReasonHeader] = Encoding.UTF8.GetBytes(problem),
                ["x-twopc-exchange"] = Encoding.UTF8.GetBytes(message.Exchange ?? string.Empty),
                ["x-twopc-routing-key"] = Encoding.UTF8.GetBytes(message.RoutingKey ?? string.Empty),
                ["x-twopc-content-type"] = Encoding.UTF8.GetBytes(message.ContentType ?? string.Empty),
                ["x-twopc-type"] = Encoding.UTF8.GetBytes(message.Type ?? string.Empty),
            },
        };
        for (var attempt = 1; ; attempt++)
        {
            var channel = await RentChannelAsync(cancellationToken).ConfigureAwait(false);
            var healthy = false;
            try
            {
                await channel.BasicPublishAsync(string.Empty, Options.ParkingQueue, mandatory: true, properties, message.Body, cancellationToken).ConfigureAwait(false);
                healthy = true;
                return;
            }
            catch (PublishException ex)
            {
                healthy = channel.IsOpen;
                _parkingFailures.Add(1);
                _logger.ParkingFailed(ex, xid, messageId, Options.ParkingQueue);
                if (attempt == 2)
                {
                    throw new ParkingFailedException($"Message {messageId} was {problem} and could not be parked in '{Options.ParkingQueue}' (the queue refused it: {ex.Message}): a heuristic hazard. Only the parking is retried; messages already confirmed are not published again.", ex);
                }
            }
            finally
            {
                await ReturnChannelAsync(channel, healthy).ConfigureAwait(false);
            }

            // Deleted by someone: it is ours (declared on every connection), so declare it again.
            try
            {
                await DeclareParkingQueueAsync(await _broker.GetAsync(cancellationToken).ConfigureAwait(false), cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationInterruptedException or AlreadyClosedException)
            {
                // Declared differently (406) or the connection dropped: the second attempt tells.
            }
        }
    }

    /// <summary>Per message of one commit: confirmed, or definitely undeliverable (why) and whether parked yet.</summary>
    private sealed class CommitProgress(int count)
    {
        public int Count => count;

        public bool[] Confirmed { get; } = new bool[count];

        public string?[] Problems { get; } = new string?[count];

        public bool[] Parked { get; } = new bool[count];

        /// <summary>One attempt of a commit at a time (the coordinator and an operator's forced commit may overlap).</summary>
        public SemaphoreSlim Gate { get; } = new(1, 1);
    }
}
