using System.ComponentModel.DataAnnotations;
using TwoPC.Transactions;

namespace TwoPC.Protocol;

/// <summary>Settings of a <see cref="TransactionCoordinator"/>. Validated when the coordinator is created.</summary>
/// <remarks>The one source of the coordinator's settings: the hosting package's options derive from it and add only
/// what a host needs (the log's directory and segment size).</remarks>
public class TransactionCoordinatorOptions
{
    /// <summary>
    /// This coordinator's node id (required): 1-24 characters of <c>a-z 0-9 -</c>, unique among every
    /// coordinator that shares a resource manager. Recovery presumes abort only for branches carrying it.
    /// </summary>
    /// <remarks>Required; checked by <see cref="Validate"/>. Virtual so a host can attach its own validation messages.</remarks>
    public virtual string NodeId { get; set; } = string.Empty;

    /// <summary>Timeout of a transaction begun without one. Default 60 s (as Narayana and MSDTC).</summary>
    public TimeSpan DefaultTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>The largest timeout a transaction may ask for. Default 10 minutes.</summary>
    public TimeSpan MaxTimeout { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>
    /// How old an in-doubt branch of this node, unknown to the log and to the live transactions, must be
    /// before recovery rolls it back (presumed abort). It covers the window between a resource preparing
    /// and the coordinator logging its decision. Default 30 s.
    /// </summary>
    public TimeSpan OrphanSafetyInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How often the periodic recovery pass runs. Default 15 s.</summary>
    public TimeSpan RecoveryInterval { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>First delay between phase-2 retries of one branch; it grows exponentially with jitter. Default 50 ms.</summary>
    public TimeSpan RetryBaseDelay { get; set; } = TimeSpan.FromMilliseconds(50);

    /// <summary>The cap of the delay between phase-2 retries. Retries never stop while a commit decision stands. Default 30 s.</summary>
    public TimeSpan RetryMaxDelay { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How long one phase-2 call (commit or rollback of one branch) may take before it is abandoned and retried. Default 30 s.</summary>
    public TimeSpan BranchCallTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How many times a rollback is tried before it is left to recovery (presumed abort makes that safe). Default 3.</summary>
    [Range(1, 1000)]
    public int RollbackAttempts { get; set; } = 3;

    /// <summary>How many finished outcomes are kept in memory for status queries. Default 10,000.</summary>
    [Range(0, 10_000_000)]
    public int RecentOutcomeCapacity { get; set; } = 10_000;

    /// <summary>
    /// On a shared log (<see cref="Durability.ISharedTransactionLog"/>): how often this node looks for nodes whose lease
    /// expired, to take them over. Default 1 s. Ignored on a single-node log.
    /// </summary>
    public TimeSpan TakeoverInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Last-resource commit: when a transaction has two or more branches and one of them belongs to a resource manager
    /// that stores commit markers (<see cref="Participants.ICommitMarkerStore"/>, such as PostgreSQL), that branch is
    /// never prepared: the others are, and then it commits in one phase with a marker row for the transaction — its
    /// <c>COMMIT</c> is the decision, and nothing is forced to the coordinator's log. One PREPARE, one COMMIT PREPARED
    /// and one log force fewer than two-phase commit. Where it does not apply (one branch, no such resource manager, or a
    /// branch enlisted before it) the transaction runs two-phase commit with a logged decision. Default
    /// <see langword="true"/>; <see langword="false"/> always logs the decision.
    /// </summary>
    public bool LastResourceCommit { get; set; } = true;

    /// <summary>Test hook: called at every named protocol step (the crash tests kill the process there).</summary>
    internal Func<ProtocolStep, GlobalTransactionId, int, ValueTask>? StepHook { get; set; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        // The one node id rule (NodeId.TryValidate), with its reason: hosts report this message rather than a copy of the rule.
        if (!Transactions.NodeId.TryValidate(NodeId ?? string.Empty, out var nodeIdError))
        {
            throw new ArgumentException(string.IsNullOrEmpty(NodeId)
                ? $"TransactionCoordinatorOptions.NodeId is required: set a node id unique among the coordinators that share resources (1-{Transactions.NodeId.MaxLength} characters of a-z, 0-9 and '-')."
                : $"TransactionCoordinatorOptions.NodeId must be 1-{Transactions.NodeId.MaxLength} characters of a-z, 0-9 and '-', not starting or ending with '-'; {TransactionIdFormatException.Sanitize(NodeId)} is not: {nodeIdError}.", nameof(NodeId));
        }

        Positive(DefaultTimeout, nameof(DefaultTimeout));
        Positive(MaxTimeout, nameof(MaxTimeout));
        Positive(OrphanSafetyInterval, nameof(OrphanSafetyInterval));
        Positive(RecoveryInterval, nameof(RecoveryInterval));
        Positive(RetryBaseDelay, nameof(RetryBaseDelay));
        Positive(RetryMaxDelay, nameof(RetryMaxDelay));
        Positive(BranchCallTimeout, nameof(BranchCallTimeout));
        Positive(TakeoverInterval, nameof(TakeoverInterval));
        if (DefaultTimeout > MaxTimeout)
        {
            throw new ArgumentException($"TransactionCoordinatorOptions.DefaultTimeout ({DefaultTimeout}) exceeds MaxTimeout ({MaxTimeout}).", nameof(DefaultTimeout));
        }

        if (RetryBaseDelay > RetryMaxDelay)
        {
            throw new ArgumentException($"TransactionCoordinatorOptions.RetryBaseDelay ({RetryBaseDelay}) exceeds RetryMaxDelay ({RetryMaxDelay}).", nameof(RetryBaseDelay));
        }

        if (RollbackAttempts < 1)
        {
            throw new ArgumentException("TransactionCoordinatorOptions.RollbackAttempts must be at least 1.", nameof(RollbackAttempts));
        }

        if (RecentOutcomeCapacity < 0)
        {
            throw new ArgumentException("TransactionCoordinatorOptions.RecentOutcomeCapacity must not be negative.", nameof(RecentOutcomeCapacity));
        }
    }

    private static void Positive(TimeSpan value, string name)
    {
        if (value <= TimeSpan.Zero)
        {
            throw new ArgumentException($"TransactionCoordinatorOptions.{name} must be positive (got {value}).", name);
        }
    }
}

/// <summary>Named points of the protocol, where the crash tests kill the coordinator.</summary>
internal enum ProtocolStep
{
    /// <summary>Commit was called; no branch has been asked to prepare.</summary>
    BeforePrepare,

    /// <summary>The k-th vote arrived (k = 1..n).</summary>
    AfterPrepare,

    /// <summary>The commit decision is durable; no branch has been told.</summary>
    DecisionLogged,

    /// <summary>The k-th branch acknowledged commit.</summary>
    AfterBranchCommitted,

    /// <summary>The END record was appended.</summary>
    AfterEnd,

    /// <summary>Last-resource commit: every other branch voted; the last resource's commit with its marker is not sent yet.</summary>
    BeforeMarkerCommit,

    /// <summary>Last-resource commit: the last resource committed with its marker (the decision); no prepared branch was told.</summary>
    AfterMarkerCommit,

    /// <summary>Recovery fenced the k-th last-resource orphan of a pass (the fence is committed) and has not acted on it yet.</summary>
    AfterFence,
}
