namespace TwoPC.Recovery;

/// <summary>Which way an operator forces an in-doubt branch.</summary>
public enum ForcedAction
{
    /// <summary>Commit the branch.</summary>
    Commit,

    /// <summary>Roll the branch back.</summary>
    Rollback,
}
