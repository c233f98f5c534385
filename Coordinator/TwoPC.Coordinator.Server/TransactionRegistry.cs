using System.Collections.Concurrent;
using TwoPC.Participants;
using TwoPC.Protocol;
using TwoPC.Transactions;

namespace TwoPC.Coordinator.Server;

/// <summary>
/// The transactions begun through the API, by id (the coordinator itself hands out the
/// <see cref="GlobalTransaction"/> only to whoever began it), and the remote resource managers.
/// </summary>
public sealed class TransactionRegistry(TransactionCoordinator coordinator, IHttpClientFactory httpClientFactory, LiveTransactionLimiter liveTransactions)
{
    /// <summary>The owner of transactions begun without an authenticated caller: all anonymous callers are one client.</summary>
    public const string AnonymousOwner = "anonymous";

    private readonly ConcurrentDictionary<GlobalTransactionId, GlobalTransaction> _live = new();
    private readonly Lock _registering = new();
    private readonly ConcurrentDictionary<string, HttpParticipantResourceManager> _remotes = new(StringComparer.Ordinal);
    private long _lastPrune;
    private long _lastForcedPrune;

    // Who began each transaction (an authenticated client's owner string), kept past its end for as many finished
    // transactions as the coordinator keeps recent outcomes by default, so its status stays its own.
    private const int FinishedOwnerCapacity = 10_000;
    private readonly ConcurrentDictionary<GlobalTransactionId, string> _owners = new();
    private readonly ConcurrentQueue<GlobalTransactionId> _finishedOwners = new();

    /// <summary>The coordinator.</summary>
    public TransactionCoordinator Coordinator => coordinator;

    /// <summary>
    /// Begins a transaction for <paramref name="owner"/> (an authenticated client's owner string; null: an anonymous caller),
    /// remembers it until it ends, and remembers who began it.
    /// </summary>
    /// <exception cref="TooManyLiveTransactionsException">The live-transaction limit, of all clients or of <paramref name="owner"/>, is reached.</exception>
    public GlobalTransaction Begin(TimeSpan? timeout, string? owner)
    {
        Prune();
        var limitedAs = owner ?? AnonymousOwner;
        var slot = liveTransactions.TryAcquire(limitedAs, out var refusal);
        if (slot is null && PruneAtLimit())
        {
            slot = liveTransactions.TryAcquire(limitedAs, out refusal);
        }

        if (slot is null)
        {
            throw refusal!;
        }

        GlobalTransaction tx;
        try
        {
            tx = coordinator.Begin(timeout);
        }
        catch
        {
            slot.Dispose();
            throw;
        }

        if (owner is not null)
        {
            _owners[tx.Id] = owner;
        }

        _live[tx.Id] = tx;
        liveTransactions.Hold(tx.Id, slot);
        return tx;
    }

    /// <summary>
    /// Whether <paramref name="owner"/> began transaction <paramref name="id"/>; for an anonymous caller (null), whether no
    /// authenticated caller did (or nobody here remembers it).
    /// </summary>
    public bool IsOwnedBy(GlobalTransactionId id, string? owner) =>
        _owners.TryGetValue(id, out var recorded) ? string.Equals(recorded, owner, StringComparison.Ordinal) : owner is null;

    /// <summary>A transaction begun here that the API may still act on.</summary>
    public bool TryGet(GlobalTransactionId id, out GlobalTransaction transaction) => _live.TryGetValue(id, out transaction!);

    /// <summary>Forgets a finished transaction (its outcome stays available from <see cref="TransactionCoordinator.GetStatus"/>).</summary>
    public void Forget(GlobalTransactionId id)
    {
        if (_live.TryRemove(id, out _))
        {
            liveTransactions.Release(id);
            RetireOwner(id);
        }
    }

    /// <summary>
    /// The remote resource manager called <paramref name="name"/>, created and registered on first use (by the API,
    /// or by recovery through the coordinator's resolver): one instance per name.
    /// </summary>
    /// <exception cref="InvalidOperationException">A resource manager of another kind has that name.</exception>
    /// <exception cref="ArgumentException">The name is invalid.</exception>
    public HttpParticipantResourceManager GetOrRegisterRemote(string name)
    {
        return TryGetRemote(name, out var known) ? known : Register(name);
    }

    /// <summary>The remote participant <paramref name="name"/>, if a branch of it was registered since this process started.</summary>
    internal bool TryGetRemote(string name, out HttpParticipantResourceManager remote) => _remotes.TryGetValue(name, out remote!);

    private HttpParticipantResourceManager Register(string name)
    {
        // Every branch registration comes here: known names are answered without the lock or a scan.
        if (_remotes.TryGetValue(name, out var known))
        {
            return known;
        }

        lock (_registering)
        {
            var existing = coordinator.ResourceManagers.FirstOrDefault(r => string.Equals(r.Name, name, StringComparison.Ordinal));
            if (existing is HttpParticipantResourceManager remote)
            {
                _remotes[name] = remote;
                return remote;
            }

            if (existing is not null)
            {
                throw new InvalidOperationException($"Resource manager '{name}' is registered and is not a remote participant.");
            }

            var created = new HttpParticipantResourceManager(name, httpClientFactory);
            coordinator.RegisterResourceManager(created);
            _remotes[name] = created;
            return created;
        }
    }

    // Transactions that ended without the API (the coordinator's timeout reaper) are dropped now and then.
    private void Prune()
    {
        var now = Environment.TickCount64;
        var last = Interlocked.Read(ref _lastPrune);
        if (now - last < 10_000 || Interlocked.CompareExchange(ref _lastPrune, now, last) != last)
        {
            return;
        }

        PruneEnded();
    }

    // At the limit, the slots of transactions the reaper ended are given back now rather than within 10 s; at most once a
    // second, so a client hammering begin at the limit does not make every refusal scan the table.
    private bool PruneAtLimit()
    {
        var now = Environment.TickCount64;
        var last = Interlocked.Read(ref _lastForcedPrune);
        if (now - last < 1_000 || Interlocked.CompareExchange(ref _lastForcedPrune, now, last) != last)
        {
            return false;
        }

        return PruneEnded() > 0;
    }

    private int PruneEnded()
    {
        var pruned = 0;
        foreach (var (id, tx) in _live)
        {
            if ((tx.State is TransactionState.Committed or TransactionState.RolledBack or TransactionState.Heuristic) && _live.TryRemove(id, out _))
            {
                liveTransactions.Release(id);
                RetireOwner(id);
                pruned++;
            }
        }

        return pruned;
    }

    // A finished transaction's owner is kept among the most recent ones only.
    private void RetireOwner(GlobalTransactionId id)
    {
        if (!_owners.ContainsKey(id))
        {
            return;
        }

        _finishedOwners.Enqueue(id);
        while (_finishedOwners.Count > FinishedOwnerCapacity && _finishedOwners.TryDequeue(out var oldest))
        {
            _owners.TryRemove(oldest, out _);
        }
    }
}
