using TwoPC.Client;
using TwoPC.Durability;
using TwoPC.Protocol;
using TwoPC.Recovery;

namespace TwoPC.Coordinator.Server;

/// <summary>Maps the coordinator's types to the wire contract of <see cref="TwoPC.Client"/>.</summary>
internal static class Dtos
{
    public static OutcomeDto ToDto(this TransactionOutcome outcome) => new(
        outcome.Kind.ToString(),
        outcome.Reason,
        [.. outcome.Branches.Select(b => new BranchDto(b.ResourceManager, b.Xid.ToString(), b.Vote?.ToString(), b.Outcome?.ToString()))]);

    public static TransactionStatusDto ToDto(this TransactionStatus status) => new(
        status.TransactionId.ToString(), status.State.ToString(), status.Deadline, status.Outcome?.ToDto(),
        status.Branches is { } branches ? [.. branches.Select(b => new BranchDto(b.ResourceManager, b.Xid.ToString(), b.Vote?.ToString(), b.Outcome?.ToString()))] : null);

    public static HeuristicDto ToDto(this HeuristicRecord record) => new(
        record.TransactionId.ToString(), record.RecordedAt, record.Kind.ToString(), record.Reason,
        [.. record.Branches.Select(b => new HeuristicBranchDto(b.ResourceManager, b.Xid.ToString(), b.Outcome?.ToString()))]);

    public static InDoubtBranchDto ToDto(this InDoubtReport report) => new(
        report.Xid.TryGetGlobalTransactionId()?.ToString(), report.ResourceManager, report.Xid.ToString(), report.Resolution.ToString(), report.Age.TotalSeconds, report.Detail);

    public static ForcedBranchDto ToDto(this ForcedBranchResult result) => new(
        result.Action.ToString(), result.ResourceManager, result.Xid.ToString(), (result.Outcome ?? TwoPC.Participants.BranchOutcome.Unknown).ToString(), result.Message);

    public static RecoveryReportDto ToDto(this RecoveryReport report) => new(
        [.. report.Branches.Select(b => new InDoubtDto(b.ResourceManager, b.Xid.ToString(), b.Resolution.ToString(), b.Age.TotalSeconds))],
        report.FailedResourceManagers,
        report.LeftInDoubt);
}
