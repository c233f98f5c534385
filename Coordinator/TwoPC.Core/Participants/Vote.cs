namespace TwoPC.Participants;

/// <summary>What a branch answered to prepare.</summary>
public enum VoteKind
{
    /// <summary>The branch is prepared: it can commit or roll back on the coordinator's word, even after a crash.</summary>
    Yes,

    /// <summary>The branch cannot commit and has rolled itself back.</summary>
    No,

    /// <summary>The branch changed nothing and has already finished; it takes no part in phase 2.</summary>
    ReadOnly,
}

/// <summary>A branch's answer to prepare.</summary>
public sealed record Vote
{
    private Vote(VoteKind kind, ReadOnlyMemory<byte> recoveryData, string? reason)
    {
        Kind = kind;
        RecoveryData = recoveryData;
        Reason = reason;
    }

    /// <summary>Yes, no or read-only.</summary>
    public VoteKind Kind { get; }

    /// <summary>
    /// Opaque bytes a Yes vote hands to the coordinator. They are forced to the log with the commit
    /// decision and given back to <see cref="IResourceManager.CommitAsync"/> and
    /// <see cref="IResourceManager.RollbackAsync"/>, also after a restart (for example the staged
    /// messages of a RabbitMQ branch, or a remote participant's callback address).
    /// </summary>
    public ReadOnlyMemory<byte> RecoveryData { get; }

    /// <summary>Why the branch voted no (for the caller and the log), or <see langword="null"/>.</summary>
    public string? Reason { get; }

    /// <summary>A read-only vote.</summary>
    public static Vote ReadOnly { get; } = new(VoteKind.ReadOnly, ReadOnlyMemory<byte>.Empty, null);

    /// <summary>A yes vote carrying <paramref name="recoveryData"/> (at most <see cref="MaxRecoveryDataLength"/> bytes).</summary>
    public static Vote Yes(ReadOnlyMemory<byte> recoveryData = default)
    {
        if (recoveryData.Length > MaxRecoveryDataLength)
        {
            throw new ArgumentException($"Recovery data of {recoveryData.Length} bytes exceeds the limit of {MaxRecoveryDataLength}.", nameof(recoveryData));
        }

        return new(VoteKind.Yes, recoveryData, null);
    }

    /// <summary>A no vote with the reason (kept to <see cref="ReasonText.MaxLength"/> characters: it may come from another service).</summary>
    public static Vote No(string reason) => new(VoteKind.No, ReadOnlyMemory<byte>.Empty, ReasonText.Truncate(reason) ?? "no reason given");

    /// <summary>The largest recovery data one branch may hand to the coordinator (16 MiB).</summary>
    public const int MaxRecoveryDataLength = 16 * 1024 * 1024;
}

/// <summary>What became of a branch in phase 2, as reported by its resource manager.</summary>
public enum BranchOutcome
{
    /// <summary>The branch is committed (now, or earlier: an already-committed branch reports this too).</summary>
    Committed,

    /// <summary>The branch is rolled back (now, or earlier).</summary>
    RolledBack,

    /// <summary>Part of the branch committed and part rolled back (a heuristic decision inside the resource).</summary>
    Mixed,

    /// <summary>The resource cannot tell what happened to the branch.</summary>
    Unknown,
}

/// <summary>A prepared branch that a resource manager still holds in doubt, as found by a recovery scan.</summary>
/// <param name="Xid">The branch's XID.</param>
/// <param name="PreparedAt">When the branch was prepared, if the resource knows (PostgreSQL does); recovery otherwise measures age from when it first saw the branch.</param>
public sealed record InDoubtBranch(TwoPC.Transactions.Xid Xid, DateTimeOffset? PreparedAt = null);
