using System.Collections.Concurrent;

namespace TwoPC.Protocol;

/// <summary>
/// One bound per resource manager on the phase-2 calls that re-driving logged decisions has in flight. After a
/// restart (or a takeover) thousands of decisions are re-driven at once; unbounded, their <c>COMMIT PREPARED</c>
/// calls take every pooled connection of a database, and the recovery pass's scan and its orphan rollbacks wait
/// behind all of them. A call waits for a slot of its resource manager's gate in a queue (the gate's waiters).
/// </summary>
internal sealed class RedriveGates(int perResourceManager)
{
    private readonly ConcurrentDictionary<string, SemaphoreSlim> _gates = new(StringComparer.Ordinal);

    /// <summary>At most this many re-driven calls run at once against one resource manager.</summary>
    public int PerResourceManager { get; } = perResourceManager > 0
        ? perResourceManager
        : throw new ArgumentOutOfRangeException(nameof(perResourceManager), perResourceManager, "The bound must be positive.");

    /// <summary>The gate of <paramref name="resourceManager"/> (created on first use, kept for the coordinator's life).</summary>
    public SemaphoreSlim For(string resourceManager) =>
        _gates.GetOrAdd(resourceManager, static (_, bound) => new SemaphoreSlim(bound, bound), PerResourceManager);
}
