namespace TwoPC.Client;

// The coordinator → participant callback contract: the coordinator POSTs a CallbackRequest to
// {callbackUrl}/prepare, /commit and /rollback; a participant answers 200 with the records below
// (409 = failed to prepare, 425 = still working: asked again). The standalone server and the remote
// participant SDK both speak it through these types.

/// <summary>Body of a callback: the branch it is about.</summary>
public sealed record CallbackRequest(string? Xid);

/// <summary>A participant's answer to <c>/prepare</c>.</summary>
/// <param name="Vote"><see cref="Yes"/>, <see cref="No"/> or <see cref="ReadOnly"/>.</param>
/// <param name="Reason">Why it voted No.</param>
public sealed record PrepareCallbackResponse(string Vote, string? Reason = null)
{
    /// <summary>Prepared: it will commit or roll back on the coordinator's word.</summary>
    public const string Yes = "yes";

    /// <summary>Cannot commit; rolled back.</summary>
    public const string No = "no";

    /// <summary>Changed nothing; takes no part in phase 2.</summary>
    public const string ReadOnly = "readOnly";
}

/// <summary>A participant's answer to <c>/commit</c> or <c>/rollback</c>: <c>committed</c>, <c>rolledBack</c>, <c>mixed</c> or <c>unknown</c>.</summary>
public sealed record FinishCallbackResponse(string Outcome);
