using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;
using TwoPC.Diagnostics;
using TwoPC.Protocol;
using TwoPC.Transactions;

namespace TwoPC.Participants.RabbitMq;

/// <summary>
/// RabbitMQ as a TwoPC participant. RabbitMQ has no prepare phase, so a branch stages its messages;
/// prepare checks their exchanges exist and hands the messages to the coordinator as recovery data,
/// which the commit decision forces to the log; commit publishes them persistent, mandatory and with
/// publisher confirms tracked. Rollback just drops the stage: nothing is ever published.
/// </summary>
/// <remarks>
/// Every message gets a stable <c>MessageId</c>, <c>{xid}.{n}</c>. A publish whose outcome is unknown
/// (the connection dropped before the confirm) fails the commit, and the coordinator retries it, also
/// after a restart, with the same ids: delivery is at least once, and consumers deduplicate by
/// <c>MessageId</c> (see the inbox). Within one process a retry publishes only the messages whose confirm
/// did not come: one already confirmed in an earlier attempt of the same commit is not published again.
/// A returned (unroutable) or nacked message, or one that cannot be encoded, is never taken for success:
/// it is parked in <see cref="RabbitMqPublisherOptions.ParkingQueue"/> and reported as a heuristic hazard;
/// if parking fails, only the parking is retried. The broker connection is opened lazily and re-opened
/// after every loss; a commit waits for it rather than failing into the coordinator's backoff.
/// </remarks>
public sealed class RabbitMqResourceManager : IResourceManager, IAsyncDisposable
{
    /// <summary>Header on a parked message: why it was parked.</summary>
    public const string ParkedReasonHeader = "x-twopc-parked-reason";

    private readonly ILogger _logger;
    private readonly ConcurrentBag<IChannel> _channels = [];
    private readonly ConcurrentDictionary<string, long> _exchangesSeen = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<Xid, CommitProgress> _commits = new();
    private readonly SemaphoreSlim _channelSlots;
    private readonly Meter _meter;
    private readonly Counter<long> _published;
    private readonly Counter<long> _parked;
    private readonly Counter<long> _parkingFailures;
    private BrokerConnection _broker = null!;
    private int _disposed;

    private RabbitMqResourceManager(string name, RabbitMqPublisherOptions options, ILogger logger, IMeterFactory? meterFactory)
    {
        Name = name;
        Options = options;
        _logger = logger;
        _channelSlots = new SemaphoreSlim(options.Channels, options.Channels);
        _meter = meterFactory?.Create(new MeterOptions(TwoPCTelemetry.MeterName)) ?? new Meter(TwoPCTelemetry.MeterName);
        _published = _meter.CreateCounter<long>("twopc.rabbitmq.published", "{message}", "Messages published and confirmed on commit.");
        _parked = _meter.CreateCounter<long>("twopc.rabbitmq.parked", "{message}", "Messages returned as unroutable, nacked or not publishable, parked for an operator.");
        _parkingFailures = _meter.CreateCounter<long>("twopc.rabbitmq.parking_failed", "{attempt}", "Attempts to park an undeliverable message that failed (the parking is retried).");
    }

    /// <inheritdoc />
    public string Name { get; }

    /// <summary>
    /// <see langword="false"/>: a commit publishes the staged messages one by one (each confirmed on its own),
    /// so it is never one atomic step. The coordinator therefore always prepares a publishing branch and forces
    /// its commit decision (with the messages) to the log, and retries the publish until it is acknowledged,
    /// also after a restart.
    /// </summary>
    public bool CommitsAtomically => false;

    /// <summary>The settings.</summary>
    public RabbitMqPublisherOptions Options { get; }

    /// <summary><see langword="true"/> while the connection to the broker is open.</summary>
    public bool IsConnected => _broker.Current is not null;

    /// <summary>
    /// Creates the resource manager and starts connecting in the background: a broker that is down now is
    /// not an error (the coordinator can still be built and recover its other resources); the connection is
    /// retried with capped backoff (<see cref="RabbitMqPublisherOptions.ReconnectDelay"/>), and re-opened after
    /// every loss. The durable parking queue is declared on every new connection.
    /// </summary>
    /// <param name="name">The resource manager's name (stable across restarts).</param>
    /// <param name="connectionFactory">The broker's address and settings; copied, never modified.</param>
    /// <param name="options">Publisher settings.</param>
    /// <param name="loggerFactory">Logging.</param>
    /// <param name="meterFactory">Metrics.</param>
    /// <param name="cancellationToken">Cancels the creation.</param>
    public static Task<RabbitMqResourceManager> CreateAsync(
        string name,
        ConnectionFactory connectionFactory,
        RabbitMqPublisherOptions? options = null,
        ILoggerFactory? loggerFactory = null,
        IMeterFactory? meterFactory = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(connectionFactory);
        cancellationToken.ThrowIfCancellationRequested();
        options ??= new RabbitMqPublisherOptions();
        if (options.MaxOutstandingConfirms < 1 || options.Channels < 1)
        {
            throw new ArgumentException("RabbitMqPublisherOptions.MaxOutstandingConfirms and Channels must be at least 1.", nameof(options));
        }

        if (options.ReconnectDelay <= TimeSpan.Zero)
        {
            throw new ArgumentException("RabbitMqPublisherOptions.ReconnectDelay must be positive.", nameof(options));
        }

        if (OutgoingMessage.ShortStringProblem("parking queue name", options.ParkingQueue) is { } problem)
        {
            throw new ArgumentException($"RabbitMqPublisherOptions.ParkingQueue: {problem}.", nameof(options));
        }

        var logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger("TwoPC.Participants.RabbitMq");
        var rm = new RabbitMqResourceManager(name, options, logger, meterFactory);
        rm._broker = BrokerConnection.Start(connectionFactory, "twopc-" + name, options.ReconnectDelay, rm.DeclareParkingQueueAsync, logger);
        return Task.FromResult(rm);
    }

    /// <summary>Waits until the connection to the broker is open.</summary>
    public async Task WaitUntilConnectedAsync(CancellationToken cancellationToken = default) =>
        await _broker.GetAsync(cancellationToken).ConfigureAwait(false);

    /// <summary>Enlists a publishing branch: stage messages on it with <see cref="RabbitMqBranch.Publish(OutgoingMessage)"/>.</summary>
    public RabbitMqBranch Enlist(GlobalTransaction transaction)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        return transaction.Enlist(xid => new RabbitMqBranch(this, xid, _logger));
    }

    /// <summary>
    /// Publishes the branch's messages (its recovery data) with confirms; idempotent by message id. While the
    /// broker is unreachable the call waits for the connection (until <paramref name="cancellationToken"/>), so
    /// the publish goes out as soon as the connection is back instead of after the coordinator's next backoff.
    /// A message confirmed in an earlier attempt of this commit (in this process) is not published again.
    /// </summary>
    public async ValueTask<BranchOutcome> CommitAsync(Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken) =>
        await PublishAsync(xid, StagedMessages.Decode(recoveryData), cancellationToken).ConfigureAwait(false);

    /// <summary>Nothing was published before commit, so rolling back only forgets the stage.</summary>
    public ValueTask<BranchOutcome> RollbackAsync(Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken)
    {
        _commits.TryRemove(xid, out _);
        return ValueTask.FromResult(BranchOutcome.RolledBack);
    }

    /// <summary>The broker holds nothing in doubt: staged messages live in the coordinator's log until they are published.</summary>
    public ValueTask<IReadOnlyCollection<InDoubtBranch>> RecoverAsync(CancellationToken cancellationToken) =>
        ValueTask.FromResult<IReadOnlyCollection<InDoubtBranch>>([]);

    /// <summary>Nothing to forget: parked messages stay in the parking queue for the operator.</summary>
    public ValueTask ForgetAsync(Xid xid, CancellationToken cancellationToken)
    {
        _commits.TryRemove(xid, out _);
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        // A host may dispose it twice (as a hosted resource and as a service).
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _broker.DisposeAsync().ConfigureAwait(false);
        while (_channels.TryTake(out var channel))
        {
            await channel.DisposeAsync().ConfigureAwait(false);
        }

        _channelSlots.Dispose();
        _meter.Dispose();
    }

    /// <summary>The stable id of the <paramref name="index"/>-th message of a branch.</summary>
    public static string MessageId(Xid xid, int index) => string.Create(CultureInfo.InvariantCulture, $"{xid}.{index}");

    private async Task DeclareParkingQueueAsync(IConnection connection, CancellationToken cancellationToken)
    {
        await using var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
        await channel.QueueDeclareAsync(Options.ParkingQueue, durable: true, exclusive: false, autoDelete: false,
            arguments: new Dictionary<string, object?> { ["x-queue-type"] = "quorum" }, cancellationToken: cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Checks (passively) that every exchange a branch publishes to exists; an exchange seen within
    /// <see cref="RabbitMqPublisherOptions.ExchangeCheckInterval"/> is trusted without asking again.
    /// </summary>
    internal async Task<string?> FindMissingExchangeAsync(IEnumerable<string> exchanges, CancellationToken cancellationToken) =>
        (await FindMissingExchangesAsync(exchanges, cancellationToken).ConfigureAwait(false)).FirstOrDefault();

    private async Task<List<string>> FindMissingExchangesAsync(IEnumerable<string> exchanges, CancellationToken cancellationToken)
    {
        var missing = new List<string>();
        var now = Environment.TickCount64;
        foreach (var exchange in exchanges.Distinct(StringComparer.Ordinal))
        {
            if (exchange.Length == 0 || (_exchangesSeen.TryGetValue(exchange, out var until) && until > now))
            {
                continue; // the default exchange always exists
            }

            // A failed passive declare closes the channel, so each check gets a throwaway one.
            var connection = await _broker.GetAsync(cancellationToken).ConfigureAwait(false);
            await using var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
            try
            {
                await channel.ExchangeDeclarePassiveAsync(exchange, cancellationToken).ConfigureAwait(false);
                _exchangesSeen[exchange] = now + (long)Options.ExchangeCheckInterval.TotalMilliseconds;
            }
            catch (OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == 404)
            {
                _exchangesSeen.TryRemove(exchange, out _);
                missing.Add(exchange);
            }
        }

        return missing;
    }

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

    private async Task<IChannel> RentChannelAsync(CancellationToken cancellationToken)
    {
        await _channelSlots.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            while (_channels.TryTake(out var pooled))
            {
                if (pooled.IsOpen)
                {
                    return pooled;
                }

                await pooled.DisposeAsync().ConfigureAwait(false);
            }

            IConnection connection;
            try
            {
                connection = await _broker.GetAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException ex) when (cancellationToken.IsCancellationRequested && !IsConnected)
            {
                // The call waited for the broker until its deadline: say so, and the coordinator tries again at once.
                throw new ResourceUnavailableException($"The broker of resource manager '{Name}' is unreachable; waiting for its connection.", ex);
            }

            return await connection.CreateChannelAsync(
                new CreateChannelOptions(
                    publisherConfirmationsEnabled: true,
                    publisherConfirmationTrackingEnabled: true,
                    outstandingPublisherConfirmationsRateLimiter: new ThrottlingRateLimiter(Options.MaxOutstandingConfirms)),
                cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            _channelSlots.Release();
            throw;
        }
    }

    private async Task ReturnChannelAsync(IChannel channel, bool healthy)
    {
        if (healthy && channel.IsOpen)
        {
            _channels.Add(channel);
        }
        else
        {
            await channel.DisposeAsync().ConfigureAwait(false);
        }

        _channelSlots.Release();
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

/// <summary>An undeliverable message could not be parked either; the commit is retried (the parking only).</summary>
public sealed class ParkingFailedException : Exception
{
    /// <summary>Creates the exception.</summary>
    public ParkingFailedException() { }

    /// <summary>Creates the exception.</summary>
    public ParkingFailedException(string message) : base(message) { }

    /// <summary>Creates the exception.</summary>
    public ParkingFailedException(string message, Exception innerException) : base(message, innerException) { }
}

/// <summary>A staged message's exchange was deleted after the branch prepared.</summary>
internal sealed class ExchangeMissingException(string exchange) : Exception($"exchange '{exchange}' does not exist");
