using System.Text.Json;
using TwoPC.Client;
using TwoPC.Participants;
using TwoPC.Protocol;
using TwoPC.Transactions;

namespace TwoPC.Coordinator.Server.Tests;

/// <summary>The typed wire contract writes exactly the text it always has, and reads it back.</summary>
public sealed class WireContractTests
{
    [Fact]
    public void Callback_answers_keep_their_camel_case_words()
    {
        Assert.Equal("""{"vote":"yes","reason":null,"recoveryData":null}""", Write(new PrepareCallbackResponse(CallbackVote.Yes)));
        Assert.Equal("""{"vote":"no","reason":"out of stock","recoveryData":null}""", Write(new PrepareCallbackResponse(CallbackVote.No, "out of stock")));
        Assert.Equal("""{"vote":"readOnly","reason":null,"recoveryData":null}""", Write(new PrepareCallbackResponse(CallbackVote.ReadOnly)));
        Assert.Equal("""{"outcome":"committed"}""", Write(new FinishCallbackResponse(CallbackOutcome.Committed)));
        Assert.Equal("""{"outcome":"rolledBack"}""", Write(new FinishCallbackResponse(CallbackOutcome.RolledBack)));
        Assert.Equal("""{"outcome":"mixed"}""", Write(new FinishCallbackResponse(CallbackOutcome.Mixed)));
        Assert.Equal("""{"outcome":"unknown"}""", Write(new FinishCallbackResponse(CallbackOutcome.Unknown)));
    }

    [Fact]
    public void Callback_answers_are_read_ignoring_case_and_refused_outside_the_contract()
    {
        Assert.Equal(CallbackVote.ReadOnly, Read<PrepareCallbackResponse>("""{"vote":"readOnly"}""").Vote);
        Assert.Equal(CallbackOutcome.RolledBack, Read<FinishCallbackResponse>("""{"outcome":"rolledBack"}""").Outcome);
        Assert.Equal(CallbackOutcome.RolledBack, Read<FinishCallbackResponse>("""{"outcome":"RolledBack"}""").Outcome);
        Assert.Throws<JsonException>(() => Read<PrepareCallbackResponse>("""{"vote":"maybe"}"""));
        Assert.Throws<JsonException>(() => Read<PrepareCallbackResponse>("""{"vote":0}"""));
        Assert.Throws<JsonException>(() => Read<PrepareCallbackResponse>("""{"reason":"no vote"}"""));
        Assert.Throws<JsonException>(() => Read<FinishCallbackResponse>("""{"outcome":"1"}"""));
        Assert.Throws<JsonException>(() => Read<FinishCallbackResponse>("{}"));
    }

    [Fact]
    public void Statuses_and_outcomes_keep_the_coordinators_pascal_case_words()
    {
        var branch = new BranchDto("payments", "xid", BranchVoteDto.ReadOnly, null);
        var outcome = new OutcomeDto(OutcomeKindDto.HeuristicMixed, null, [branch, branch with { Vote = BranchVoteDto.Yes, Outcome = BranchOutcomeDto.RolledBack }]);
        Assert.Equal(
            """{"id":"t","state":"RollingBack","deadline":null,"outcome":{"kind":"HeuristicMixed","reason":null,"branches":[{"resourceManager":"payments","xid":"xid","vote":"ReadOnly","outcome":null},{"resourceManager":"payments","xid":"xid","vote":"Yes","outcome":"RolledBack"}]},"branches":null}""",
            Write(new TransactionStatusDto("t", TransactionStateDto.RollingBack, null, outcome)));
        Assert.Equal(
            """{"action":"Commit","resourceManager":"rm","xid":"x","outcome":"Committed","message":"m"}""",
            Write(new ForcedBranchDto("Commit", "rm", "x", BranchOutcomeDto.Committed, "m")));
        Assert.Equal(TransactionStateDto.Committing, Read<TransactionStatusDto>("""{"id":"t","state":"Committing","branches":[]}""").State);
    }

    [Fact]
    public void Every_word_of_the_coordinator_has_its_wire_value_under_the_same_name()
    {
        AssertSameNames<TransactionState, TransactionStateDto>();
        AssertSameNames<OutcomeKind, OutcomeKindDto>();
        AssertSameNames<BranchOutcome, BranchOutcomeDto>();
        AssertSameNames<VoteKind, BranchVoteDto>();
        AssertSameNames<BranchOutcome, CallbackOutcome>();
        AssertSameNames<VoteKind, CallbackVote>();
    }

    private static void AssertSameNames<TCore, TWire>()
        where TCore : struct, Enum
        where TWire : struct, Enum =>
        Assert.Equal(Enum.GetNames<TCore>(), Enum.GetNames<TWire>());

    private static string Write<T>(T value) => JsonSerializer.Serialize(value, TwoPCJson.Options);

    private static T Read<T>(string json) => JsonSerializer.Deserialize<T>(json, TwoPCJson.Options)!;
}
