using System.ComponentModel.DataAnnotations;

namespace TwoPC.Participants.Remote;

/// <summary>Settings of a remote participant (configuration section <c>TwoPC:Participant</c> by convention).</summary>
public sealed class RemoteParticipantOptions
{
    /// <summary>
    /// The participant's stable, unique resource manager name (1-64 printable characters), for example
    /// <c>payments</c>. The coordinator logs branches under it; keep it the same across restarts.
    /// </summary>
    [Required]
    public string Name { get; set; } = string.Empty;

    /// <summary>The standalone coordinator's base URL, for example <c>http://127.0.0.1:5080/</c>.</summary>
    [Required]
    public Uri? CoordinatorUrl { get; set; }

    /// <summary>
    /// Where the coordinator reaches this service's participant endpoints (the address plus the prefix given
    /// to <c>MapTwoPCParticipant</c>), for example <c>http://127.0.0.1:5102/twopc</c>.
    /// </summary>
    [Required]
    public Uri? CallbackUrl { get; set; }

    /// <summary>
    /// This participant's key, shared with the coordinator only (its <c>Coordinator:Participants:{Name}:Key</c>); at
    /// least 32 bytes, for example <c>openssl rand -base64 32</c>. Every callback must carry a signature under it
    /// (<see cref="TwoPC.Client.RequestSignature"/>, key id = <see cref="Name"/>) or is refused with 401, so nobody but
    /// the coordinator can prepare, commit or roll back a branch; and this participant signs its own calls to the
    /// coordinator with it. The key itself is never sent. Required unless <see cref="AllowUnauthenticatedCallbacks"/>.
    /// </summary>
    public string? Key { get; set; }

    /// <summary>
    /// Development only: run without a <see cref="Key"/>, accepting unsigned callbacks from anyone who can reach this
    /// service. A warning is logged at start. Default false.
    /// </summary>
    public bool AllowUnauthenticatedCallbacks { get; set; }

    /// <summary>How far a callback's signed timestamp may be from this service's clock, either way. Default 5 minutes.</summary>
    public TimeSpan CallbackClockSkew { get; set; } = TwoPC.Client.RequestSignature.DefaultClockSkew;

    /// <summary>Replaced by <see cref="Key"/> (callbacks are now signed, the key never sent); setting it refuses to start.</summary>
    [Obsolete("Renamed to Key: callbacks are signed with the participant's own key. Setting CallbackKey refuses to start.")]
    public string? CallbackKey { get; set; }

    /// <summary>How often prepared branches are checked against the coordinator's decisions. Default 10 s.</summary>
    public TimeSpan RecoveryInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How old a prepared branch the coordinator has no record of must be before it is rolled back (presumed
    /// abort). It must exceed the longest transaction timeout. Default 2 minutes.
    /// </summary>
    public TimeSpan OrphanSafetyInterval { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>
    /// Answer a branch request whose branch prepared with its Yes vote signed with <see cref="Key"/>, in the
    /// <c>TwoPC-Prepared-Vote</c> header (<see cref="TwoPC.Client.TwoPCHeaders.PreparedVote"/>). A caller using
    /// <c>TwoPC.Client</c> relays it with its commit and the coordinator, after checking the signature, sends the branch no
    /// prepare callback: no extra request at all. A caller that does not relay it changes nothing (the coordinator asks
    /// <c>/prepare</c>). Needs a <see cref="Key"/>. Default true.
    /// </summary>
    public bool RelayPreparedVotes { get; set; } = true;

    /// <summary>
    /// Also report a branch's Yes vote to the coordinator directly, right after <c>PREPARE TRANSACTION</c> and before the
    /// request answers (<c>POST /transactions/{id}/branches/{xid}/prepared</c>, signed like the registration): for callers
    /// that do not relay <see cref="RelayPreparedVotes"/>' header. It costs the request a round trip to the coordinator
    /// (instead of the prepare callback). A coordinator that predates the call answers 404; this participant then stops
    /// reporting. Default false.
    /// </summary>
    public bool ReportPreparedVotes { get; set; }

    /// <summary>How long one call to the coordinator may take. Default 10 s.</summary>
    public TimeSpan CoordinatorCallTimeout { get; set; } = TimeSpan.FromSeconds(10);
}
