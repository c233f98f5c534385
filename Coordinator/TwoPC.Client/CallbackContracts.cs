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
/// <param name="Vote"><see cref="Yes"/>, <see cref="No"/> or <see cref="ReadOnly"/>.</param>
/// <param name="Reason">Why it voted No.</param>
/// <param name="RecoveryData">With a Yes: what the participant's resource needs to finish the branch exactly after
/// any restart (base64, at most <see cref="MaxRecoveryDataLength"/> characters), for example its database transaction
/// id. The coordinator forces it to its log with the decision and sends it back on <c>/commit</c> and <c>/rollback</c>.</param>
public sealed record PrepareCallbackResponse(string Vote, string? Reason = null, string? RecoveryData = null)
{
    /// <summary>The longest base64 recovery data a participant may answer with.</summary>
    public const int MaxRecoveryDataLength = 4096;

    /// <summary>Prepared: it will commit or roll back on the coordinator's word.</summary>
    public const string Yes = "yes";

    /// <summary>Cannot commit; rolled back.</summary>
    public const string No = "no";

    /// <summary>Changed nothing; takes no part in phase 2.</summary>
    public const string ReadOnly = "readOnly";
}

/// <summary>A participant's answer to <c>/commit</c> or <c>/rollback</c>: <c>committed</c>, <c>rolledBack</c>, <c>mixed</c> or <c>unknown</c>.</summary>
public sealed record FinishCallbackResponse(string Outcome);
