namespace TwoPC.Recovery;

/// <summary>What became of an operator's forced action.</summary>
public enum ForcedBranchStatus
{
    /// <summary>The resource manager answered (or the coordinator's own record already showed the branch resolved): see <see cref="ForcedBranchResult.Outcome"/>.</summary>
    Completed,

    /// <summary>The safety rules refused the action; nothing was changed (see <see cref="ForcedBranchResult.Message"/>).</summary>
    Refused,

    /// <summary>No resource manager of that name is registered and the resolver supplied none; nothing was changed.</summary>
    UnknownResourceManager,

    /// <summary>The resource manager did not answer (after a few attempts): the branch's state is unknown.</summary>
    Failed,
}
