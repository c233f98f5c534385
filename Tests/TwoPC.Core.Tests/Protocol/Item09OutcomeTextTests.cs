using TwoPC.Participants;
using TwoPC.Protocol;
using TwoPC.Transactions;

namespace TwoPC.Tests.Protocol;

/// <summary>Issue 15 item 9(a): an outcome prints its branches, not <c>BranchReport[]</c>.</summary>
public sealed class Item09OutcomeTextTests
{
    [Fact]
    public void Item09_an_outcome_prints_each_branch_readably()
    {
        var id = new GlobalTransactionId(NodeId.Parse("orders-1"), 3, 17);
        // An array, as the coordinator builds it (today's text: "Branches = TwoPC.Protocol.BranchReport[]").
        var outcome = new TransactionOutcome(id, OutcomeKind.RolledBack, "branch payments voted no: insufficient funds", new BranchReport[]
        {
            new("orders", Xid.ForBranch(id, 1), VoteKind.Yes, BranchOutcome.RolledBack),
            new("payments", Xid.ForBranch(id, 2), VoteKind.No, null),
        });

        var text = outcome.ToString();

        Assert.DoesNotContain("BranchReport[]", text, StringComparison.Ordinal);
        Assert.DoesNotContain("System.", text, StringComparison.Ordinal);
        Assert.Contains($"TransactionId = {id}", text, StringComparison.Ordinal);
        Assert.Contains("Kind = RolledBack", text, StringComparison.Ordinal);
        Assert.Contains("Reason = branch payments voted no: insufficient funds", text, StringComparison.Ordinal);
        Assert.Contains($"orders {Xid.ForBranch(id, 1)} vote Yes, RolledBack", text, StringComparison.Ordinal);
        Assert.Contains($"payments {Xid.ForBranch(id, 2)} vote No, no phase 2", text, StringComparison.Ordinal);
    }

    [Fact]
    public void Item09_an_outcome_without_branches_says_so()
    {
        var id = new GlobalTransactionId(NodeId.Parse("orders-1"), 3, 18);
        var text = new TransactionOutcome(id, OutcomeKind.Committed, null, []).ToString();

        Assert.Contains("Branches = []", text, StringComparison.Ordinal);
        Assert.Contains("Kind = Committed", text, StringComparison.Ordinal);
    }
}
