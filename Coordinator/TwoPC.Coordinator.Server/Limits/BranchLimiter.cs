using System.Runtime.CompilerServices;
using Microsoft.Extensions.Options;
using TwoPC.Protocol;

namespace TwoPC.Coordinator.Server;

/// <summary>
/// Counts the branches registered through the API per transaction against <see cref="CoordinatorLimitsOptions.MaxBranchesPerTransaction"/>.
/// A count lives as long as its <see cref="GlobalTransaction"/>, so nothing here needs pruning.
/// </summary>
internal sealed class BranchLimiter(IOptions<CoordinatorLimitsOptions> options)
{
    private readonly ConditionalWeakTable<GlobalTransaction, StrongBox<int>> _counts = [];

    public int Max => options.Value.MaxBranchesPerTransaction;

    /// <summary>Takes one of the transaction's branch slots; <see langword="false"/> when all are taken. Exact under concurrent registrations.</summary>
    public bool TryReserve(GlobalTransaction transaction)
    {
        var count = _counts.GetValue(transaction, static _ => new StrongBox<int>());
        if (Interlocked.Increment(ref count.Value) <= Max)
        {
            return true;
        }

        Interlocked.Decrement(ref count.Value);
        return false;
    }

    /// <summary>Gives back a slot whose branch was not enlisted.</summary>
    public void Unreserve(GlobalTransaction transaction)
    {
        if (_counts.TryGetValue(transaction, out var count))
        {
            Interlocked.Decrement(ref count.Value);
        }
    }
}
