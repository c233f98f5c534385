using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Globalization;
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
public sealed partial class RabbitMqResourceManager : IResourceManager, IAsyncDisposable
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
        var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
        await using var channelScope = channel.ConfigureAwait(false);
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
            var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
            await using var channelScope = channel.ConfigureAwait(false);
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
}
