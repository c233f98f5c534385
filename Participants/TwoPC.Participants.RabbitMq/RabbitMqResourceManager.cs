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
/// <c>MessageId</c> (see the inbox). A returned (unroutable) or nacked message is never taken for
/// success: it is parked in <see cref="RabbitMqPublisherOptions.ParkingQueue"/> and reported as a
/// heuristic hazard.
/// </remarks>
public sealed class RabbitMqResourceManager : IResourceManager, IAsyncDisposable
{
    /// <summary>Header on a parked message: why it was parked.</summary>
    public const string ParkedReasonHeader = "x-twopc-parked-reason";

    private readonly IConnection _connection;
    private readonly ILogger _logger;
    private readonly ConcurrentBag<IChannel> _channels = [];
    private readonly ConcurrentDictionary<string, long> _exchangesSeen = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _channelSlots;
    private readonly Meter _meter;
    private readonly Counter<long> _published;
    private readonly Counter<long> _parked;

    private RabbitMqResourceManager(string name, IConnection connection, RabbitMqPublisherOptions options, ILogger logger, IMeterFactory? meterFactory)
    {
        Name = name;
        _connection = connection;
        Options = options;
        _logger = logger;
        _channelSlots = new SemaphoreSlim(options.Channels, options.Channels);
        _meter = meterFactory?.Create(new MeterOptions(TwoPCTelemetry.MeterName)) ?? new Meter(TwoPCTelemetry.MeterName);
        _published = _meter.CreateCounter<long>("twopc.rabbitmq.published", "{message}", "Messages published and confirmed on commit.");
        _parked = _meter.CreateCounter<long>("twopc.rabbitmq.parked", "{message}", "Messages returned as unroutable or nacked, parked for an operator.");
    }

    /// <inheritdoc />
    public string Name { get; }

    /// <summary>The settings.</summary>
    public RabbitMqPublisherOptions Options { get; }

    /// <summary>
    /// Connects (with automatic connection recovery) and declares the durable parking queue.
    /// </summary>
    public static async Task<RabbitMqResourceManager> CreateAsync(
        string name,
        ConnectionFactory connectionFactory,
        RabbitMqPublisherOptions? options = null,
        ILoggerFactory? loggerFactory = null,
        IMeterFactory? meterFactory = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(connectionFactory);
        options ??= new RabbitMqPublisherOptions();
        if (options.MaxOutstandingConfirms < 1 || options.Channels < 1)
        {
            throw new ArgumentException("RabbitMqPublisherOptions.MaxOutstandingConfirms and Channels must be at least 1.", nameof(options));
        }

        connectionFactory.AutomaticRecoveryEnabled = true;
        connectionFactory.TopologyRecoveryEnabled = true;
        var logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger("TwoPC.Participants.RabbitMq");
        var connection = await connectionFactory.CreateConnectionAsync("twopc-" + name, cancellationToken).ConfigureAwait(false);
        try
        {
            await using (var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken).ConfigureAwait(false))
            {
                await channel.QueueDeclareAsync(options.ParkingQueue, durable: true, exclusive: false, autoDelete: false,
                    arguments: new Dictionary<string, object?> { ["x-queue-type"] = "quorum" }, cancellationToken: cancellationToken).ConfigureAwait(false);
            }

            logger.Connected(name, connection.Endpoint);
            return new RabbitMqResourceManager(name, connection, options, logger, meterFactory);
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Enlists a publishing branch: stage messages on it with <see cref="RabbitMqBranch.Publish(OutgoingMessage)"/>.</summary>
    public RabbitMqBranch Enlist(GlobalTransaction transaction)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        return transaction.Enlist(xid => new RabbitMqBranch(this, xid, _logger));
    }

    /// <summary>Publishes the branch's messages (its recovery data) with confirms; idempotent by message id.</summary>
    public async ValueTask<BranchOutcome> CommitAsync(Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken) =>
        await PublishAsync(xid, StagedMessages.Decode(recoveryData), cancellationToken).ConfigureAwait(false);

    /// <summary>Nothing was published before commit, so rolling back only forgets the stage.</summary>
    public ValueTask<BranchOutcome> RollbackAsync(Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken) =>
        ValueTask.FromResult(BranchOutcome.RolledBack);

    /// <summary>The broker holds nothing in doubt: staged messages live in the coordinator's log until they are published.</summary>
    public ValueTask<IReadOnlyCollection<InDoubtBranch>> RecoverAsync(CancellationToken cancellationToken) =>
        ValueTask.FromResult<IReadOnlyCollection<InDoubtBranch>>([]);

    /// <summary>Nothing to forget: parked messages stay in the parking queue for the operator.</summary>
    public ValueTask ForgetAsync(Xid xid, CancellationToken cancellationToken) => ValueTask.CompletedTask;

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        while (_channels.TryTake(out var channel))
        {
            await channel.DisposeAsync().ConfigureAwait(false);
        }

        await _connection.DisposeAsync().ConfigureAwait(false);
        _channelSlots.Dispose();
        _meter.Dispose();
    }

    /// <summary>The stable id of the <paramref name="index"/>-th message of a branch.</summary>
    public static string MessageId(Xid xid, int index) => string.Create(CultureInfo.InvariantCulture, $"{xid}.{index}");

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
            await using var channel = await _connection.CreateChannelAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
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

        // An exchange deleted since prepare would close the channel on every attempt (404): park its
        // messages as undeliverable instead of retrying them forever.
        var missing = await FindMissingExchangesAsync(messages.Select(m => m.Exchange), cancellationToken).ConfigureAwait(false);
        var channel = await RentChannelAsync(cancellationToken).ConfigureAwait(false);
        var healthy = true;
        try
        {
            var publishes = new Task[messages.Count];
            for (var i = 0; i < messages.Count; i++)
            {
                publishes[i] = missing.Contains(messages[i].Exchange)
                    ? Task.FromException(new ExchangeMissingException(messages[i].Exchange))
                    : PublishOneAsync(channel, messages[i], MessageId(xid, i), cancellationToken);
            }

            try
            {
                await Task.WhenAll(publishes).ConfigureAwait(false);
            }
            catch (Exception) when (publishes.All(p => p.IsCompletedSuccessfully || p.Exception?.InnerException is PublishException or ExchangeMissingException))
            {
                // Only definite answers (returns and nacks) failed: park those below.
            }
            catch (Exception ex)
            {
                // Some confirm never came: the outcome is unknown, so the coordinator retries with the same ids.
                healthy = false;
                _logger.PublishUncertain(ex, xid);
                throw;
            }

            var parked = 0;
            for (var i = 0; i < messages.Count; i++)
            {
                if (publishes[i].Exception?.InnerException is (PublishException or ExchangeMissingException) and var failure)
                {
                    var problem = failure switch
                    {
                        PublishReturnException returned => $"returned as unroutable ({returned.ReplyCode} {returned.ReplyText})",
                        ExchangeMissingException => "not publishable: its exchange no longer exists",
                        _ => "nacked by the broker",
                    };
                    await ParkAsync(channel, messages[i], MessageId(xid, i), problem, cancellationToken).ConfigureAwait(false);
                    _logger.Parked(xid, MessageId(xid, i), messages[i].Exchange, messages[i].RoutingKey, problem, Options.ParkingQueue);
                    parked++;
                }
            }

            _published.Add(messages.Count - parked);
            if (parked > 0)
            {
                _parked.Add(parked);
                return BranchOutcome.Unknown;
            }

            _logger.Published(xid, messages.Count);
            return BranchOutcome.Committed;
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

    private async Task ParkAsync(IChannel channel, OutgoingMessage message, string messageId, string problem, CancellationToken cancellationToken)
    {
        var properties = new BasicProperties
        {
            Persistent = true,
            MessageId = messageId,
            ContentType = message.ContentType,
            Type = message.Type,
            Headers = new Dictionary<string, object?>(StringComparer.Ordinal)
            {
                [ParkedReasonHeader] = Encoding.UTF8.GetBytes(problem),
                ["x-twopc-exchange"] = Encoding.UTF8.GetBytes(message.Exchange),
                ["x-twopc-routing-key"] = Encoding.UTF8.GetBytes(message.RoutingKey),
            },
        };
        await channel.BasicPublishAsync(string.Empty, Options.ParkingQueue, mandatory: true, properties, message.Body, cancellationToken).ConfigureAwait(false);
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

            return await _connection.CreateChannelAsync(
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
}

/// <summary>A staged message's exchange was deleted after the branch prepared.</summary>
internal sealed class ExchangeMissingException(string exchange) : Exception($"exchange '{exchange}' does not exist");
