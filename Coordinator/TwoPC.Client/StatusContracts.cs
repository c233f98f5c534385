using System.Text.Json.Serialization;

namespace TwoPC.Client;

// The coordinator's words for states and outcomes, as they appear on the wire (PascalCase, the names of the
// coordinator's own enums). Typed so a client that decides on them (participant-side recovery, the CLI) cannot drift
// from the server by a typo: a renamed value is a compile error, and the contract tests pin the text.

/// <summary>Where a transaction is, as <c>GET /transactions/{id}</c> reports it (<see cref="TransactionStatusDto.State"/>).</summary>
[JsonConverter(typeof(WireEnumConverter<TransactionStateDto>))]
public enum TransactionStateDto
{
    /// <summary>Begun; branches may enlist and do work.</summary>
    Active,

    /// <summary>Phase 1: the branches are being asked to prepare.</summary>
    Preparing,

    /// <summary>The commit decision is durable; phase 2 is telling the branches.</summary>
    Committing,

    /// <summary>Rolling back (a No vote, a timeout, or an explicit rollback).</summary>
    RollingBack,

    /// <summary>Every branch committed.</summary>
    Committed,

    /// <summary>Every branch rolled back.</summary>
    RolledBack,

    /// <summary>Ended with a heuristic outcome that an operator must look at and forget.</summary>
    Heuristic,

    /// <summary>The log failed while forcing the decision: the branches stay prepared until the coordinator recovers.</summary>
    InDoubt,

    /// <summary>No record: under presumed abort, not committed.</summary>
    Unknown,
}

/// <summary>How a transaction ended (<see cref="OutcomeDto.Kind"/>, <see cref="HeuristicDto.Kind"/>).</summary>
[JsonConverter(typeof(WireEnumConverter<OutcomeKindDto>))]
public enum OutcomeKindDto
{
    /// <summary>Every branch committed.</summary>
    Committed,

    /// <summary>Every branch rolled back.</summary>
    RolledBack,

    /// <summary>The decision was rollback but the branches report committed (XA HEURCOM).</summary>
    HeuristicCommit,

    /// <summary>The decision was commit but the branches report rolled back (XA HEURRB).</summary>
    HeuristicRollback,

    /// <summary>Some branches committed and some rolled back (XA HEURMIX).</summary>
    HeuristicMixed,

    /// <summary>The outcome of some branches is unknown (XA HEURHAZ).</summary>
    HeuristicHazard,
}

/// <summary>What a branch voted, as the coordinator reports it (<see cref="BranchDto.Vote"/>).</summary>
[JsonConverter(typeof(WireEnumConverter<BranchVoteDto>))]
public enum BranchVoteDto
{
    /// <summary>Prepared.</summary>
    Yes,

    /// <summary>Cannot commit; rolled back.</summary>
    No,

    /// <summary>Changed nothing; took no part in phase 2.</summary>
    ReadOnly,
}

/// <summary>What became of a branch, as the coordinator reports it (<see cref="BranchDto.Outcome"/>, <see cref="ForcedBranchDto.Outcome"/>).</summary>
[JsonConverter(typeof(WireEnumConverter<BranchOutcomeDto>))]
public enum BranchOutcomeDto
{
    /// <summary>Committed.</summary>
    Committed,

    /// <summary>Rolled back.</summary>
    RolledBack,

    /// <summary>Part committed and part rolled back (a heuristic decision inside the resource).</summary>
    Mixed,

    /// <summary>The resource cannot tell.</summary>
    Unknown,
}
