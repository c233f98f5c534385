using System.Text.Json.Serialization;

namespace TwoPC.Client;

// The coordinator → participant callback contract: the coordinator POSTs a CallbackRequest to
// {callbackUrl}/prepare, /commit and /rollback; a participant answers 200 with the records below
// (409 = failed to prepare, 425 = still working: asked again). The standalone server and the remote
// participant SDK both speak it through these types.

/// <summary>Body of a callback: the branch it is about.</summary>
/// <param name="Xid">The branch's XID.</param>
/// <param name="RecoveryData">On <c>/commit</c> and <c>/rollback</c>: the recovery data the participant answered
/// <c>/prepare</c> with (base64), as the coordinator logged it with its decision; absent when there was none.</param>
public sealed record CallbackRequest(string? Xid, string? RecoveryData = null);

/// <summary>A participant's answer to <c>/prepare</c>.</summary>
/// <param name="Vote">Yes, No or ReadOnly (required: an answer without a vote is refused).</param>
/// <param name="Reason">Why it voted No.</param>
/// <param name="RecoveryData">With a Yes: what the participant's resource needs to finish the branch exactly after
/// any restart (base64, at most <see cref="MaxRecoveryDataLength"/> characters), for example its database transaction
/// id. The coordinator forces it to its log with the decision and sends it back on <c>/commit</c> and <c>/rollback</c>.</param>
public sealed record PrepareCallbackResponse([property: JsonRequired] CallbackVote Vote, string? Reason = null, string? RecoveryData = null)
{
    /// <summary>The longest base64 recovery data a participant may answer with.</summary>
    public const int MaxRecoveryDataLength = 4096;
}

/// <summary>A participant's answer to <c>/commit</c> or <c>/rollback</c>.</summary>
/// <param name="Outcome">What became of the branch (required).</param>
public sealed record FinishCallbackResponse([property: JsonRequired] CallbackOutcome Outcome);

/// <summary>A participant's vote on the wire: <c>yes</c>, <c>no</c>, <c>readOnly</c> (<see cref="PrepareCallbackResponse.Vote"/>).</summary>
[JsonConverter(typeof(WireEnumConverter<CallbackVote>))]
public enum CallbackVote
{
    /// <summary>Prepared: it will commit or roll back on the coordinator's word.</summary>
    [JsonStringEnumMemberName("yes")]
    Yes,

    /// <summary>Cannot commit; rolled back.</summary>
    [JsonStringEnumMemberName("no")]
    No,

    /// <summary>Changed nothing; takes no part in phase 2.</summary>
    [JsonStringEnumMemberName("readOnly")]
    ReadOnly,
}

/// <summary>
/// What became of a branch, as a participant answers <c>/commit</c> and <c>/rollback</c>: <c>committed</c>,
/// <c>rolledBack</c>, <c>mixed</c> or <c>unknown</c> (<see cref="FinishCallbackResponse.Outcome"/>; read ignoring case).
/// </summary>
[JsonConverter(typeof(WireEnumConverter<CallbackOutcome>))]
public enum CallbackOutcome
{
    /// <summary>Committed (now or earlier).</summary>
    [JsonStringEnumMemberName("committed")]
    Committed,

    /// <summary>Rolled back (now or earlier).</summary>
    [JsonStringEnumMemberName("rolledBack")]
    RolledBack,

    /// <summary>Part committed and part rolled back.</summary>
    [JsonStringEnumMemberName("mixed")]
    Mixed,

    /// <summary>The resource cannot tell.</summary>
    [JsonStringEnumMemberName("unknown")]
    Unknown,
}
