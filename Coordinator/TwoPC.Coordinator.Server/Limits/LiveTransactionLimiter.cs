using System.Collections.Concurrent;
using System.Threading.RateLimiting;
using Microsoft.Extensions.Options;
using TwoPC.Transactions;

namespace TwoPC.Coordinator.Server;

/// <summary>
/// The slots of live transactions (<see cref="CoordinatorLimitsOptions.MaxLiveTransactions"/> for all clients,
/// <see cref="CoordinatorLimitsOptions.MaxLiveTransactionsPerClient"/> per owner): concurrency limiters without a queue,
/// one permit per transaction from its begin until the registry forgets it.
/// </summary>
public sealed class LiveTransactionLimiter : IDisposable
{
    private readonly CoordinatorLimitsOptions _options;
    private readonly ILogger _logger;
    private readonly ConcurrencyLimiter _all;
    private readonly PartitionedRateLimiter<string> _perClient;
    private readonly ConcurrentDictionary<GlobalTransactionId, Slot> _held = new();
    private long _refused;
    private long _lastWarning = long.MinValue;

    /// <summary>Creates the limiter from the options.</summary>
    public LiveTransactionLimiter(IOptions<CoordinatorLimitsOptions> options, ILogger<LiveTransactionLimiter> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Value;
        _logger = logger;
        _all = new ConcurrencyLimiter(new ConcurrencyLimiterOptions { PermitLimit = _options.MaxLiveTransactions, QueueLimit = 0 });
        var perClient = _options.MaxLiveTransactionsPerClient;
        _perClient = PartitionedRateLimiter.Create<string, string>(
            owner => RateLimitPartition.GetConcurrencyLimiter(owner, _ => new ConcurrencyLimiterOptions { PermitLimit = perClient, QueueLimit = 0 }),
            StringComparer.Ordinal);
    }

    /// <summary>How many slots are held now.</summary>
    public int Held => _held.Count;

    /// <summary>Takes a slot for a transaction of <paramref name="owner"/>, or says why not.</summary>
    /// <returns>The slot (hand it to <see cref="Hold"/> once the transaction has begun, else dispose it), or <see langword="null"/> with <paramref name="refusal"/>.</returns>
    public IDisposable? TryAcquire(string owner, out TooManyLiveTransactionsException? refusal)
    {
        ArgumentNullException.ThrowIfNull(owner);
        var mine = _perClient.AttemptAcquire(owner);
        if (!mine.IsAcquired)
        {
            mine.Dispose();
            refusal = Refuse(owner, perClient: true, $"This client has {_options.MaxLiveTransactionsPerClient} live transactions (Coordinator:Limits:MaxLiveTransactionsPerClient); end one or let one reach its deadline, then begin again.");
            return null;
        }

        var any = _all.AttemptAcquire();
        if (!any.IsAcquired)
        {
            any.Dispose();
            mine.Dispose();
            refusal = Refuse(owner, perClient: false, $"The coordinator has {_options.MaxLiveTransactions} live transactions (Coordinator:Limits:MaxLiveTransactions); begin again later.");
            return null;
        }

        refusal = null;
        return new Slot(mine, any);
    }

    /// <summary>The transaction <paramref name="id"/> holds <paramref name="slot"/> until <see cref="Release"/>.</summary>
    public void Hold(GlobalTransactionId id, IDisposable slot)
    {
        ArgumentNullException.ThrowIfNull(slot);
        if (!_held.TryAdd(id, (Slot)slot))
        {
            slot.Dispose();
        }
    }

    /// <summary>Gives back the slot of <paramref name="id"/> (idempotent).</summary>
    public void Release(GlobalTransactionId id)
    {
        if (_held.TryRemove(id, out var slot))
        {
            slot.Dispose();
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var slot in _held.Values)
        {
            slot.Dispose();
        }

        _held.Clear();
        _all.Dispose();
        _perClient.Dispose();
    }

    private TooManyLiveTransactionsException Refuse(string owner, bool perClient, string message)
    {
        // One warning per 10 s at most: a client hammering begin at the limit must not flood the log.
        var refused = Interlocked.Increment(ref _refused);
        var now = Environment.TickCount64;
        var last = Interlocked.Read(ref _lastWarning);
        if (now - last >= 10_000 && Interlocked.CompareExchange(ref _lastWarning, now, last) == last)
        {
            Log.LiveTransactionsRefused(_logger, perClient ? "MaxLiveTransactionsPerClient" : "MaxLiveTransactions", owner, _held.Count, Interlocked.Exchange(ref _refused, 0));
        }

        return new TooManyLiveTransactionsException(message, perClient, _options.LiveTransactionsRetryAfter);
    }

    private sealed class Slot(RateLimitLease mine, RateLimitLease any) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                any.Dispose();
                mine.Dispose();
            }
        }
    }
}
