using TwoPC.Client;
using TwoPC.Durability;
using TwoPC.Participants;
using TwoPC.Protocol;
using TwoPC.Recovery;
using TwoPC.Transactions;

namespace TwoPC.Coordinator.Server;

/// <summary>Maps the coordinator's types to the wire contract of <see cref="TwoPC.Client"/>.</summary>
internal static class Dtos
{
    public static OutcomeDto ToDto(this TransactionOutcome outcome) => new(
        ToDto(outcome.Kind),
        outcome.Reason,
        [.. outcome.Branches.Select(ToDto)]);

    public static TransactionStatusDto ToDto(this TransactionStatus status) => new(
        status.TransactionId.ToString(), ToDto(status.State), status.Deadline, status.Outcome?.ToDto(),
        status.Branches is { } branches ? [.. branches.Select(ToDto)] : null);

    public static HeuristicDto ToDto(this HeuristicRecord record) => new(
        record.TransactionId.ToString(), record.RecordedAt, ToDto(record.Kind), record.Reason,
        [.. record.Branches.Select(b => new HeuristicBranchDto(b.ResourceManager, b.Xid.ToString(), b.Outcome is { } o ? ToDto(o) : null))]);

    public static InDoubtBranchDto ToDto(this InDoubtReport report) => new(
        report.Xid.TryGetGlobalTransactionId()?.ToString(), report.ResourceManager, report.Xid.ToString(), report.Resolution.ToString(), report.Age.TotalSeconds, report.Detail);

    public static ForcedBranchDto ToDto(this ForcedBranchResult result) => new(
        result.Action.ToString(), result.ResourceManager, result.Xid.ToString(), ToDto(result.Outcome ?? BranchOutcome.Unknown), result.Message);

    public static RecoveryReportDto ToDto(this RecoveryReport report) => new(
        [.. report.Branches.Select(b => new InDoubtDto(b.ResourceManager, b.Xid.ToString(), b.Resolution.ToString(), b.Age.TotalSeconds))],
        report.FailedResourceManagers,
        report.LeftInDoubt);

    // The wire enums carry the coordinator's own names (the text the API has always sent), so each maps by name; the
    // contract tests check every value of the coordinator's enums has its counterpart.
    public static TransactionStateDto ToDto(TransactionState state) => ByName<TransactionStateDto>(state);

    public static OutcomeKindDto ToDto(OutcomeKind kind) => ByName<OutcomeKindDto>(kind);

    public static BranchOutcomeDto ToDto(BranchOutcome outcome) => ByName<BranchOutcomeDto>(outcome);

    public static BranchVoteDto ToDto(VoteKind vote) => ByName<BranchVoteDto>(vote);

    private static BranchDto ToDto(BranchReport b) =>
        new(b.ResourceManager, b.Xid.ToString(), b.Vote is { } v ? ToDto(v) : null, b.Outcome is { } o ? ToDto(o) : null);

    private static TDto ByName<TDto>(Enum value)
        where TDto : struct, Enum =>
        Enum.Parse<TDto>(value.ToString());
}
