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
    /// A shared secret the coordinator sends with every callback (its <c>Coordinator:CallbackKey</c>, header
    /// <c>TwoPC-Callback-Key</c>). When set, a prepare/commit/rollback call without it is refused with 401, so
    /// nobody but the coordinator can commit or roll back a prepared branch. Strongly recommended.
    /// </summary>
    public string? CallbackKey { get; set; }

    /// <summary>How often prepared branches are checked against the coordinator's decisions. Default 10 s.</summary>
    public TimeSpan RecoveryInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How old a prepared branch the coordinator has no record of must be before it is rolled back (presumed
    /// abort). It must exceed the longest transaction timeout. Default 2 minutes.
    /// </summary>
    public TimeSpan OrphanSafetyInterval { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>How long one call to the coordinator may take. Default 10 s.</summary>
    public TimeSpan CoordinatorCallTimeout { get; set; } = TimeSpan.FromSeconds(10);
}
