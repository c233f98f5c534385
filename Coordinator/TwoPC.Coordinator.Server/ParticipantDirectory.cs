using TwoPC.Client;
using TwoPC.Transactions;

namespace TwoPC.Coordinator.Server;

/// <summary>
/// The remote participants configured under <c>Coordinator:Participants:{name}</c> (<c>CallbackUrl</c>, <c>Key</c>): a
/// participant's identity is bound to its callback URL and key here, by the operator, never by a registering request.
/// </summary>
public sealed class ParticipantDirectory
{
    private readonly Dictionary<string, ParticipantIdentity> _byName;

    private readonly CallbackOrigin[] _origins;

    private ParticipantDirectory(Dictionary<string, ParticipantIdentity> byName, bool allowUnauthenticatedCallbacks, bool allowUnconfiguredParticipants, CallbackOrigin[] origins)
    {
        _byName = byName;
        AllowUnauthenticatedCallbacks = allowUnauthenticatedCallbacks;
        AllowUnconfiguredParticipants = allowUnconfiguredParticipants;
        _origins = origins;
    }

    /// <summary>Every configured participant.</summary>
    public IReadOnlyCollection<ParticipantIdentity> All => _byName.Values;

    /// <summary>
    /// <c>Coordinator:AllowUnauthenticatedCallbacks</c> (development only): a participant may be configured without a key,
    /// and its callbacks are then sent unsigned. A warning is logged at start.
    /// </summary>
    public bool AllowUnauthenticatedCallbacks { get; }

    /// <summary>
    /// <c>Coordinator:AllowUnconfiguredParticipants</c> (development only): a branch may be registered under a name that is
    /// not configured, with the callback URL of the registering request, when that URL's origin is listed in
    /// <c>Coordinator:AllowedCallbackOrigins</c>. Such participants' callbacks are unsigned. A warning is logged at start.
    /// </summary>
    public bool AllowUnconfiguredParticipants { get; }

    /// <summary>The origins (<c>scheme://host:port</c>) an unconfigured participant's callback URL may have.</summary>
    public IReadOnlyList<string> AllowedCallbackOrigins => [.. _origins.Select(o => o.ToString())];

    /// <summary>
    /// Whether <paramref name="callbackUrl"/>'s scheme, host and port equal those of an entry of
    /// <c>Coordinator:AllowedCallbackOrigins</c> (an empty list allows none).
    /// </summary>
    public bool AllowsOrigin(Uri callbackUrl)
    {
        ArgumentNullException.ThrowIfNull(callbackUrl);
        return _origins.Any(o => o.Matches(callbackUrl));
    }

    /// <summary>Whether two callback base URLs name the same endpoint (a trailing slash aside).</summary>
    public static bool SameCallbackUrl(Uri a, Uri b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        return string.Equals(a.AbsoluteUri.TrimEnd('/'), b.AbsoluteUri.TrimEnd('/'), StringComparison.Ordinal);
    }

    /// <summary>Whether <paramref name="target"/> is <paramref name="callbackUrl"/> or an address under it.</summary>
    public static bool IsUnder(Uri target, Uri callbackUrl)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(callbackUrl);
        var root = callbackUrl.AbsoluteUri.TrimEnd('/');
        var text = target.AbsoluteUri;
        return string.Equals(text.TrimEnd('/'), root, StringComparison.Ordinal) || text.StartsWith(root + "/", StringComparison.Ordinal);
    }

    /// <summary>The configured participant called <paramref name="name"/>.</summary>
    public bool TryGet(string name, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out ParticipantIdentity? participant) =>
        _byName.TryGetValue(name, out participant);

    /// <summary>Reads and checks <c>Coordinator:Participants</c>.</summary>
    /// <param name="coordinator">The <c>Coordinator</c> configuration section.</param>
    /// <exception cref="InvalidOperationException">A participant is misconfigured: the message names it and says what to fix.</exception>
    public static ParticipantDirectory FromConfiguration(IConfiguration coordinator)
    {
        ArgumentNullException.ThrowIfNull(coordinator);
        // The settings this one replaces: refused, so an old configuration cannot leave a protection silently off.
        if (!string.IsNullOrEmpty(coordinator["CallbackKey"]))
        {
            throw new InvalidOperationException("Coordinator:CallbackKey (one key shared by every participant and sent on every callback) is no longer supported: " +
                "give each participant its own key under Coordinator:Participants:{name}:Key (and the same value as TwoPC:Participant:Key in that participant); callbacks are signed with it, never sent.");
        }

        if (coordinator.GetSection("AllowedCallbackHosts").GetChildren().Any() || !string.IsNullOrEmpty(coordinator["AllowedCallbackHosts"]))
        {
            throw new InvalidOperationException("Coordinator:AllowedCallbackHosts (host names, any port) is no longer supported: configure each participant's " +
                "callback URL under Coordinator:Participants:{name}:CallbackUrl, or, for development only, set Coordinator:AllowUnconfiguredParticipants=true " +
                "with Coordinator:AllowedCallbackOrigins entries of the form scheme://host:port (compared exactly).");
        }

        var allowUnauthenticated = coordinator.GetValue("AllowUnauthenticatedCallbacks", false);
        var allowUnconfigured = coordinator.GetValue("AllowUnconfiguredParticipants", false);
        var origins = new List<CallbackOrigin>();
        foreach (var entry in coordinator.GetSection("AllowedCallbackOrigins").GetChildren())
        {
            origins.Add(CallbackOrigin.Parse(entry.Value, entry.Path));
        }
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

        // Names registered at start without configuration: only where unconfigured participants are allowed at all.
        foreach (var name in coordinator.GetSection("RemoteResourceManagers").Get<string[]>() ?? [])
        {
            if (!byName.ContainsKey(name) && !allowUnconfigured)
            {
                var shown = ResourceManagerName.IsValid(name) ? name : TransactionIdFormatException.Sanitize(name);
                throw new InvalidOperationException($"Coordinator:RemoteResourceManagers names '{shown}', which is not configured: " +
                    $"configure it under Coordinator:Participants:{shown} (CallbackUrl, Key) instead. (Unconfigured participants are allowed only with Coordinator:AllowUnconfiguredParticipants=true, for development.)");
            }
        }

        return new ParticipantDirectory(byName, allowUnauthenticated, allowUnconfigured, [.. origins]);
    }

    /// <summary>An entry of <c>Coordinator:AllowedCallbackOrigins</c>: scheme, host and port, each compared exactly.</summary>
    private sealed record CallbackOrigin(string Scheme, string Host, int Port)
    {
        public static CallbackOrigin Parse(string? text, string setting)
        {
            // The port must be written out: "http://host" would silently mean port 80 and "host" any scheme.
            var separator = text?.IndexOf("://", StringComparison.Ordinal) ?? -1;
            var authority = separator < 0 ? string.Empty : text![(separator + 3)..].TrimEnd('/');
            var hasPort = authority.LastIndexOf(':') > authority.LastIndexOf(']');
            if (separator < 0 || !hasPort || !Uri.TryCreate(text, UriKind.Absolute, out var uri)
                || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps)
                || uri.AbsolutePath != "/" || !string.IsNullOrEmpty(uri.Query) || !string.IsNullOrEmpty(uri.UserInfo) || !string.IsNullOrEmpty(uri.Fragment))
            {
                throw new InvalidOperationException($"{setting} must be an origin of the form scheme://host:port (http or https, the port written out, no path), for example http://payments:8080; got '{TransactionIdFormatException.Sanitize(text ?? string.Empty)}'.");
            }

            return new CallbackOrigin(uri.Scheme, uri.IdnHost, uri.Port);
        }

        public bool Matches(Uri url) =>
            string.Equals(url.Scheme, Scheme, StringComparison.OrdinalIgnoreCase)
            && string.Equals(url.IdnHost, Host, StringComparison.OrdinalIgnoreCase)
            && url.Port == Port;

        public override string ToString() => $"{Scheme}://{Host}:{Port}";
    }
}
