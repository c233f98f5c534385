using System.Collections.Concurrent;
using TwoPC.Transactions;

namespace TwoPC.Tests.Recovery;

/// <summary>
/// The parallelism tests' probe: counts the calls in flight (keeping the highest count) and holds each one until
/// <paramref name="enough"/> says the count reached is enough, or <paramref name="wait"/> passed; a branch marked
/// failing then throws, as an unreachable database would.
/// </summary>
internal sealed class InFlightGate(Func<int, bool> enough, TimeSpan wait)
{
    private readonly TaskCompletionSource _enough = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ConcurrentDictionary<Xid, bool> _failing = new();
    private int _inFlight;
    private int _maxInFlight;

    public int MaxInFlight => Volatile.Read(ref _maxInFlight);

    public void Fail(Xid xid) => _failing[xid] = true;

    public void Heal() => _failing.Clear();

    /// <summary>Holds the call, then runs <paramref name="then"/> while it still counts as in flight.</summary>
    public async ValueTask<T> PassAsync<T>(Xid xid, Func<T> then, CancellationToken cancellationToken)
    {
        var now = Interlocked.Increment(ref _inFlight);
        int max;
        while (now > (max = Volatile.Read(ref _maxInFlight)) && Interlocked.CompareExchange(ref _maxInFlight, now, max) != max)
        {
        }

        try
        {
            if (enough(now))
            {
                _enough.TrySetResult();
            }

            try
            {
                await _enough.Task.WaitAsync(wait, cancellationToken);
            }
            catch (TimeoutException)
            {
                _enough.TrySetResult();
            }

            if (_failing.ContainsKey(xid))
            {
                throw new IOException("scripted: the database is unreachable for this branch");
            }

            return then();
        }
        finally
        {
            Interlocked.Decrement(ref _inFlight);
        }
    }
}
