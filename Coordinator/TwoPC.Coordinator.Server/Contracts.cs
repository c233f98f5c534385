using TwoPC.Protocol;
using TwoPC.Recovery;
using TwoPC.Durability;

namespace TwoPC.Coordinator.Server;

/// <summary>Body of <c>POST /transactions</c>.</summary>
public sealed record BeginTransactionRequest(double? TimeoutSeconds);

/// <summary>A transaction just begun.</summary>
public sealed record BeginTransactionResponse(string Id, DateTimeOffset Deadline);

/// <summary>Body of <c>POST /transactions/{id}/branches</c>.</summary>
public sealed record RegisterBranchRequest(string? ResourceManager, string? CallbackUrl);

/// <summary>A remote branch just enlisted.</summary>
public sealed record RegisterBranchResponse(string Xid);

/// <summary>One branch of an outcome.</summary>
public sealed record BranchDto(string ResourceManager, string Xid, string? Vote, string? Outcome);

/// <summary>The outcome of a transaction.</summary>
public sealed record OutcomeDto(string Kind, string? Reason, IReadOnlyList<BranchDto> Branches)
{
    internal static OutcomeDto From(TransactionOutcome outcome) => new(
        outcome.Kind.ToString(),
        outcome.Reason,
        [.. outcome.Branches.Select(b => new BranchDto(b.ResourceManager, b.Xid.ToString(), b.Vote?.ToString(), b.Outcome?.ToString()))]);
}

/// <summary>What the coordinator knows about a transaction (<c>Unknown</c>: no record, so under presumed abort not committed).</summary>
public sealed record TransactionStatusDto(string Id, string State, DateTimeOffset? Deadline, OutcomeDto? Outcome)
{
    internal static TransactionStatusDto From(TransactionStatus status) => new(
        status.TransactionId.ToString(), status.State.ToString(), status.Deadline, status.Outcome is { } o ? OutcomeDto.From(o) : null);
}

/// <summary>One branch of a heuristic outcome.</summary>
public sealed record HeuristicBranchDto(string ResourceManager, string Xid, string? Outcome);

/// <summary>A heuristic outcome waiting for an operator.</summary>
public sealed record HeuristicDto(string TransactionId, DateTimeOffset RecordedAt, string Kind, string Reason, IReadOnlyList<HeuristicBranchDto> Branches)
{
    internal static HeuristicDto From(HeuristicRecord record) => new(
        record.TransactionId.ToString(), record.RecordedAt, record.Kind.ToString(), record.Reason,
        [.. record.Branches.Select(b => new HeuristicBranchDto(b.ResourceManager, b.Xid.ToString(), b.Outcome?.ToString()))]);
}

/// <summary>One in-doubt branch seen by a recovery pass.</summary>
public sealed record InDoubtDto(string ResourceManager, string Xid, string Resolution, double AgeSeconds);

/// <summary>The report of a recovery pass.</summary>
public sealed record RecoveryReportDto(IReadOnlyList<InDoubtDto> Branches, IReadOnlyList<string> FailedResourceManagers, int LeftInDoubt)
{
    internal static RecoveryReportDto From(RecoveryReport report) => new(
        [.. report.Branches.Select(b => new InDoubtDto(b.ResourceManager, b.Xid.ToString(), b.Resolution.ToString(), b.Age.TotalSeconds))],
        report.FailedResourceManagers,
        report.LeftInDoubt);
}
