using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;
using Microsoft.Extensions.Logging;
using TwoPC.Diagnostics;
using TwoPC.Participants;
using TwoPC.Transactions;

namespace TwoPC.Recovery;

/// <summary>
/// The resource managers this coordinator can reach, by name: the registered ones, and those the resolver supplies
/// when a logged decision or an operator names one that is not registered. One instance per name wins.
/// </summary>
/// <remarks>Owned by the coordinator and handed to the protocol, recovery and the operator actions, so none of them
/// calls back into the coordinator to find a resource manager.</remarks>
internal sealed class ResourceManagerRegistry(ILogger logger)
{
    private readonly ConcurrentDictionary<string, IResourceManager> _byName = new(StringComparer.Ordinal);

    /// <summary>
    /// The name rule, owned here for the whole coordinator: 1-64 characters, none of them a control character (the name
    /// is written into the log and shown to operators). The HTTP contract (<c>TwoPC.Client</c>) states the same rule
    /// for participants and operators; Core does not reference that package.
    /// </summary>
    public static bool IsValidName([NotNullWhen(true)] string? name) => !string.IsNullOrEmpty(name) && name.Length <= 64 && !name.Any(char.IsControl);

    /// <summary>Supplies a resource manager for a name that is not registered (see <c>TransactionCoordinator.ResourceManagerResolver</c>).</summary>
    public Func<string, IResourceManager?>? Resolver { get; set; }

    /// <summary>The registered (and resolved) resource managers.</summary>
    public IReadOnlyCollection<IResourceManager> All => [.. _byName.Values];

    /// <summary>
    /// The registered commit-markable resource managers whose name hashes to <paramref name="hash"/> — where a last-resource
    /// transaction's marker lives when its prepared branches' XIDs carry that hash (<see cref="Protocol.LastResourceXid"/>).
    /// Normally one; on a hash collision every candidate (fencing one where the transaction never was is harmless).
    /// </summary>
    public IReadOnlyList<ICommitMarkerStore> MarkerStoresFor(uint hash) =>
        [.. _byName.Values.OfType<ICommitMarkerStore>().Where(s => Protocol.LastResourceXid.Hash(((IResourceManager)s).Name) == hash)];

    /// <summary>Registers a resource manager under its <see cref="IResourceManager.Name"/>.</summary>
    /// <exception cref="ArgumentException">The name is invalid, or another resource manager has it.</exception>
    public void Register(IResourceManager resourceManager)
    {
        ArgumentNullException.ThrowIfNull(resourceManager);
        var name = resourceManager.Name;
        if (!IsValidName(name))
        {
            throw new ArgumentException($"Resource manager name {TransactionIdFormatException.Sanitize(name ?? string.Empty)} is invalid: 1-64 printable characters are required.", nameof(resourceManager));
        }

        var existing = _byName.GetOrAdd(name, resourceManager);
        if (!ReferenceEquals(existing, resourceManager))
        {
            throw new ArgumentException($"A different resource manager is already registered as '{name}'; names must be unique.", nameof(resourceManager));
        }
    }

    /// <summary>Throws unless <paramref name="resourceManager"/> is the instance registered under its name (enlisting needs it, so recovery can reach the branch).</summary>
    public void EnsureRegistered(IResourceManager resourceManager)
    {
        ArgumentNullException.ThrowIfNull(resourceManager);
        if (!_byName.TryGetValue(resourceManager.Name, out var registered) || !ReferenceEquals(registered, resourceManager))
        {
            throw new InvalidOperationException($"Resource manager '{resourceManager.Name}' is not registered with the coordinator; register it so recovery can reach it after a restart.");
        }
    }

    /// <summary>The registered resource manager called <paramref name="name"/>, else what <see cref="Resolver"/> supplies (registered on the way); <see langword="null"/> when unknown.</summary>
    public IResourceManager? Find(string name)
    {
        if (_byName.TryGetValue(name, out var registered))
        {
            return registered;
        }

        if (Resolver is not { } resolver || !IsValidName(name))
        {
            return null;
        }

        IResourceManager? resolved;
        try
        {
            resolved = resolver(name);
            if (resolved is not null && !string.Equals(resolved.Name, name, StringComparison.Ordinal))
            {
                throw new InvalidOperationException($"Asked for '{name}', the resolver returned a resource manager called '{resolved.Name}'.");
            }
        }
        catch (Exception ex)
        {
            logger.ResourceManagerResolverFailed(ex, name);
            return null;
        }

        if (resolved is null)
        {
            return null;
        }

        // The resolver may have registered it itself (the server does); either way one instance per name wins.
        var winner = _byName.GetOrAdd(name, resolved);
        if (ReferenceEquals(winner, resolved))
        {
            logger.ResourceManagerResolved(name);
        }

        return winner;
    }
}
