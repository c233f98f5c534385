using TwoPC.Client;

namespace TwoPC.Coordinator.Server;

/// <summary>
/// The remote participants configured under <c>Coordinator:Participants:{name}</c> (<c>CallbackUrl</c>, <c>Key</c>): a
/// participant's identity is bound to its callback URL and key here, by the operator, never by a registering request.
/// </summary>
public sealed class ParticipantDirectory
{
    private readonly Dictionary<string, ParticipantIdentity> _byName;

    private ParticipantDirectory(Dictionary<string, ParticipantIdentity> byName, bool allowUnauthenticatedCallbacks)
    {
        _byName = byName;
        AllowUnauthenticatedCallbacks = allowUnauthenticatedCallbacks;
    }

    /// <summary>Every configured participant.</summary>
    public IReadOnlyCollection<ParticipantIdentity> All => _byName.Values;

    /// <summary>
    /// <c>Coordinator:AllowUnauthenticatedCallbacks</c> (development only): a participant may be configured without a key,
    /// and its callbacks are then sent unsigned. A warning is logged at start.
    /// </summary>
    public bool AllowUnauthenticatedCallbacks { get; }

    /// <summary>The configured participant called <paramref name="name"/>.</summary>
    public bool TryGet(string name, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out ParticipantIdentity? participant) =>
        _byName.TryGetValue(name, out participant);

    /// <summary>Reads and checks <c>Coordinator:Participants</c>.</summary>
    /// <param name="coordinator">The <c>Coordinator</c> configuration section.</param>
    /// <exception cref="InvalidOperationException">A participant is misconfigured: the message names it and says what to fix.</exception>
    public static ParticipantDirectory FromConfiguration(IConfiguration coordinator)
    {
        ArgumentNullException.ThrowIfNull(coordinator);
        var allowUnauthenticated = coordinator.GetValue("AllowUnauthenticatedCallbacks", false);
        var byName = new Dictionary<string, ParticipantIdentity>(StringComparer.Ordinal);
        foreach (var section in coordinator.GetSection("Participants").GetChildren())
        {
            var name = section.Key;
            if (!ResourceManagerName.IsValid(name))
            {
                throw new InvalidOperationException($"Coordinator:Participants: '{name}' is not a valid participant name ({ResourceManagerName.Rule}).");
            }

            if (!HttpParticipantResourceManager.TryParseCallbackUrl(section["CallbackUrl"], out var callbackUrl))
            {
                throw new InvalidOperationException($"Coordinator:Participants:{name}:CallbackUrl must be an absolute http or https URL without query, fragment or credentials.");
            }

            var key = section["Key"];
            if (string.IsNullOrEmpty(key) && allowUnauthenticated)
            {
                key = null;
            }
            else if (!RequestSignature.IsUsableKey(key, out var problem))
            {
                throw new InvalidOperationException($"Coordinator:Participants:{name}:Key is not usable: {problem}. (Only with Coordinator:AllowUnauthenticatedCallbacks=true, for development, may a participant have no key.)");
            }

            byName[name] = new ParticipantIdentity(name, callbackUrl, key);
        }

        return new ParticipantDirectory(byName, allowUnauthenticated);
    }
}
