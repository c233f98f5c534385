namespace TwoPC.Recovery;

/// <summary>The result of one recovery pass.</summary>
/// <param name="Branches">Every in-doubt branch the resource managers reported, with what was done.</param>
/// <param name="FailedResourceManagers">Resource managers whose scan failed (retried in the next pass).</param>
public sealed record RecoveryReport(IReadOnlyList<InDoubtReport> Branches, IReadOnlyList<string> FailedResourceManagers)
{
    /// <summary>Branches left in doubt for now (everything not rolled back and not being committed).</summary>
    public int LeftInDoubt => Branches.Count(b => b.Resolution is not (InDoubtResolution.RolledBack or InDoubtResolution.Committing or InDoubtResolution.Live));
}
