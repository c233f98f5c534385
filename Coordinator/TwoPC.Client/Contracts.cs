namespace TwoPC.Client;

// The coordinator's HTTP/JSON contract (camelCase JSON). The server and the clients share these types,
// so the two sides cannot drift apart. Request bodies are internal: only this client builds them and only the
// server (which ships with this same assembly, InternalsVisibleTo) reads them; users call the client's methods.

/// <summary>Body of <c>POST /transactions</c>.</summary>
/// <param name="TimeoutSeconds">The transaction's timeout, or the coordinator's default.</param>
internal sealed record BeginTransactionRequest(double? TimeoutSeconds);

/// <summary>A transaction just begun.</summary>
/// <param name="Id">The global transaction id.</param>
/// <param name="Deadline">When the coordinator rolls the transaction back if it has not committed.</param>
public sealed record BeginTransactionResponse(string Id, DateTimeOffset Deadline);

/// <summary>Body of <c>POST /transactions/{id}/branches</c>.</summary>
/// <param name="ResourceManager">The participant's stable name (1-64 printable characters).</param>
/// <param name="CallbackUrl">The participant's base URL; the coordinator POSTs <c>/prepare</c>, <c>/commit</c> and <c>/rollback</c> under it.</param>
internal sealed record RegisterBranchRequest(string? ResourceManager, string? CallbackUrl);

/// <summary>Body of <c>POST /transactions/{id}/branches/{xid}/prepared</c>: the participant's Yes vote, reported early.</summary>
/// <param name="ResourceManager">The participant's name, as it registered the branch (a signed caller: its own name).</param>
/// <param name="RecoveryData">What the participant would have answered <c>/prepare</c> with (base64, at most
/// <see cref="PrepareCallbackResponse.MaxRecoveryDataLength"/> characters), or none.</param>
internal sealed record ReportPreparedRequest(string? ResourceManager, string? RecoveryData);

/// <summary>Body of <c>POST /transactions/{id}/commit</c> (optional).</summary>
/// <param name="PreparedVotes">The <see cref="TwoPCHeaders.PreparedVote"/> headers the branch services answered with, relayed
/// as they came: each is a participant's Yes vote signed with its own key, which the coordinator checks before it counts.</param>
internal sealed record CommitRequest(IReadOnlyList<string>? PreparedVotes);

/// <summary>A remote branch just enlisted.</summary>
/// <param name="Xid">The branch's XID: the participant prepares under this name.</param>
/// <param name="Deadline">The transaction's deadline, when known.</param>
public sealed record RegisterBranchResponse(string Xid, DateTimeOffset? Deadline = null);

/// <summary>One branch of an outcome.</summary>
public sealed record BranchDto(string ResourceManager, string Xid, BranchVoteDto? Vote, BranchOutcomeDto? Outcome);

/// <summary>The outcome of a transaction (<c>Kind</c>: Committed, RolledBack, HeuristicCommit, HeuristicRollback, HeuristicMixed, HeuristicHazard).</summary>
public sealed record OutcomeDto(OutcomeKindDto Kind, string? Reason, IReadOnlyList<BranchDto> Branches);

/// <summary>
/// What the coordinator knows about a transaction. <c>State</c> is Active, Preparing, Committing (the
/// commit decision is durable), Committed, RollingBack, RolledBack, Heuristic or Unknown (no record: under
/// presumed abort, not committed). <c>Branches</c> lists the branches of a transaction that is live in the
/// coordinator (vote and outcome filled in during phase 2); otherwise it is absent and <c>Outcome</c> has them.
/// </summary>
public sealed record TransactionStatusDto(string Id, TransactionStateDto State, DateTimeOffset? Deadline, OutcomeDto? Outcome, IReadOnlyList<BranchDto>? Branches = null);

/// <summary>One branch of a heuristic outcome.</summary>
public sealed record HeuristicBranchDto(string ResourceManager, string Xid, BranchOutcomeDto? Outcome);

/// <summary>A heuristic outcome waiting for an operator.</summary>
public sealed record HeuristicDto(string TransactionId, DateTimeOffset RecordedAt, OutcomeKindDto Kind, string Reason, IReadOnlyList<HeuristicBranchDto> Branches);

/// <summary>One in-doubt branch seen by a recovery pass.</summary>
public sealed record InDoubtDto(string ResourceManager, string Xid, string Resolution, double AgeSeconds);

/// <summary>The report of a recovery pass.</summary>
public sealed record RecoveryReportDto(IReadOnlyList<InDoubtDto> Branches, IReadOnlyList<string> FailedResourceManagers, int LeftInDoubt);

/// <summary>Who the coordinator is (<c>GET /info</c>).</summary>
/// <param name="NodeId">The coordinator's node id; its transaction ids start with it.</param>
/// <param name="Epoch">The epoch of the current start.</param>
public sealed record CoordinatorInfoDto(string NodeId, ulong Epoch)
{
    /// <summary>
    /// <see langword="true"/> when the coordinator is one node of a highly available cluster on a shared log: any of its
    /// nodes answers for, commits and rolls back a transaction begun by any other, so a participant accepts every node's
    /// branches from it.
    /// </summary>
    public bool SharedLog { get; init; }
}

/// <summary>Body of <c>POST /admin/branches/{xid}/commit</c> and <c>/rollback</c>.</summary>
/// <param name="ResourceManager">The registered name of the branch's resource manager.</param>
/// <param name="Override">Commit only: commit a branch of this coordinator's transaction even though it has no record of it (contradicts presumed abort). Ignored by rollback.</param>
internal sealed record ForceBranchRequest(string? ResourceManager, bool Override = false);

/// <summary>A branch waiting in doubt (<c>GET /admin/in-doubt</c>).</summary>
/// <param name="TransactionId">The global transaction id inside the XID, when it is a TwoPC XID.</param>
/// <param name="ResourceManager">The resource manager holding the branch.</param>
/// <param name="Xid">The branch's XID.</param>
/// <param name="Resolution">Committing (a commit decision's phase 2 is retrying it), Foreign (another node's), TooYoung, Heuristic or Failed (recovery left it alone).</param>
/// <param name="AgeSeconds">How long it has been waiting (for a committing branch: since the decision).</param>
/// <param name="Detail">Why it waits: the reason recovery left it alone, or the last error of the phase-2 retries.</param>
public sealed record InDoubtBranchDto(string? TransactionId, string ResourceManager, string Xid, string Resolution, double AgeSeconds, string? Detail);

/// <summary>The result of an operator's forced commit or rollback of one branch.</summary>
/// <param name="Action">Commit or Rollback.</param>
/// <param name="ResourceManager">The branch's resource manager.</param>
/// <param name="Xid">The branch's XID.</param>
/// <param name="Outcome">What the resource reports became of the branch: Committed, RolledBack, Mixed or Unknown.</param>
/// <param name="Message">One line for the operator.</param>
public sealed record ForcedBranchDto(string Action, string ResourceManager, string Xid, BranchOutcomeDto Outcome, string Message);
