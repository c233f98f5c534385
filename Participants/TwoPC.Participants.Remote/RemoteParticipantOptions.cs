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
    /// Report a branch's Yes vote to the coordinator right after <c>PREPARE TRANSACTION</c>, before the request answers
    /// (<c>POST /transactions/{id}/branches/{xid}/prepared</c>, signed like the registration), so the coordinator's phase 1
    /// sends the branch no prepare callback. A coordinator that predates the call answers 404; this participant then
    /// stops reporting and answers the prepare callbacks as before. Default true.
    /// </summary>
    public bool ReportPreparedVotes { get; set; } = true;

    /// <summary>How long one call to the coordinator may take. Default 10 s.</summary>
    public TimeSpan CoordinatorCallTimeout { get; set; } = TimeSpan.FromSeconds(10);
}
