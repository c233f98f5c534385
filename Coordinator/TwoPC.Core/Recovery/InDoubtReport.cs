using TwoPC.Participants;
using TwoPC.Transactions;

namespace TwoPC.Recovery;

/// <summary>One in-doubt branch seen by a recovery pass (or, for <see cref="InDoubtResolution.Committing"/>
/// in <c>TransactionCoordinator.GetInDoubt</c>, a branch phase 2 has not yet committed).</summary>
/// <param name="ResourceManager">Where it was found.</param>
/// <param name="Xid">Its XID.</param>
/// <param name="Resolution">What recovery did.</param>
/// <param name="Age">How long it has been in doubt, as far as recovery knows (for a committing branch: since the decision).</param>
/// <param name="Detail">Why it was left alone, or the last error of a phase-2 retry, for the operator.</param>
public sealed record InDoubtReport(string ResourceManager, Xid Xid, InDoubtResolution Resolution, TimeSpan Age, string? Detail = null)
{
    /// <summary>Why it was left alone, or the last error of a phase-2 retry, cut to <see cref="ReasonText.MaxLength"/> characters.</summary>
    public string? Detail { get; init => field = ReasonText.Truncate(value); } = ReasonText.Truncate(Detail);
}
