using System.Text;
using TwoPC.Transactions;

namespace TwoPC.Tests.Transactions;

public sealed class TransactionIdTests
{
    [Fact]
    public void Global_id_round_trips_through_its_canonical_text()
    {
        var id = new GlobalTransactionId(NodeId.Parse("orders-1"), 0x1f, 0xabc);
        Assert.Equal("orders-1.1f.abc", id.ToString());
        Assert.Equal(id, GlobalTransactionId.Parse(id.ToString()));
    }

    [Fact]
    public void Random_ids_round_trip_and_fit_postgres_gid_limit()
    {
        // Seeded, reproducible property check over the whole value space.
        var random = new Random(20261128);
        const string alphabet = "abcdefghijklmnopqrstuvwxyz0123456789-";
        for (var i = 0; i < 5_000; i++)
        {
            var length = random.Next(1, NodeId.MaxLength + 1);
            var chars = new char[length];
            for (var c = 0; c < length; c++)
            {
                chars[c] = alphabet[random.Next(c == 0 || c == length - 1 ? alphabet.Length - 1 : alphabet.Length)];
            }

            var node = NodeId.Parse(new string(chars));
            var id = new GlobalTransactionId(node, (ulong)random.NextInt64() * 2, (ulong)random.NextInt64());
            Assert.Equal(id, GlobalTransactionId.Parse(id.ToString()));
            var xid = Xid.ForBranch(id, random.Next(0, int.MaxValue));
            var text = xid.ToString();
            Assert.Equal(xid, Xid.Parse(text));
            Assert.Equal(id, xid.TryGetGlobalTransactionId());
            Assert.True(Encoding.UTF8.GetByteCount(text) < 200, text);
            Assert.StartsWith(Xid.PrefixFor(node), text, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Longest_xid_is_far_below_postgres_gid_limit()
    {
        var node = NodeId.Parse(new string('z', NodeId.MaxLength));
        var id = new GlobalTransactionId(node, ulong.MaxValue, ulong.MaxValue);
        Assert.Equal(GlobalTransactionId.MaxLength, id.ToString().Length);
        var xid = Xid.ForBranch(id, int.MaxValue);
        Assert.True(xid.ToString().Length <= Xid.MaxLength);
        Assert.True(Xid.MaxLength < 200);
    }

    [Theory]
    [InlineData("")]
    [InlineData("node")]
    [InlineData("node.1")]
    [InlineData("node.1.2.3")]
    [InlineData("Node.1.2")]
    [InlineData("node.01.2")]
    [InlineData("node.1.A")]
    [InlineData("node.1.")]
    [InlineData(".1.2")]
    [InlineData("-node.1.2")]
    [InlineData("node.1.10000000000000000")]
    [InlineData("node'; drop table x; --.1.2")]
    [InlineData("nöde.1.2")]
    [InlineData("node.1.2\0")]
    [InlineData("node .1.2")]
    public void Malformed_global_ids_are_rejected_with_a_clear_error(string text)
    {
        var error = Assert.Throws<TransactionIdFormatException>(() => GlobalTransactionId.Parse(text));
        Assert.StartsWith("Invalid global transaction id", error.Message, StringComparison.Ordinal);
        Assert.False(GlobalTransactionId.TryParse(text, out _));
    }

    [Theory]
    [InlineData("")]
    [InlineData("54504331_node.1.2")]
    [InlineData("54504331__1")]
    [InlineData("54504331_node.1.2_")]
    [InlineData("5450433_node.1.2_1")]
    [InlineData("5450433G_node.1.2_1")]
    [InlineData("54504331_node.1.2_1_2")]
    [InlineData("54504331_node.1.2_1'")]
    [InlineData("54504331_node.1.2_1;select 1")]
    [InlineData("54504331_node.1.2_1\\")]
    [InlineData("54504331_NODE.1.2_1")]
    [InlineData("54504331_node.1.2_ 1")]
    public void Malformed_or_hostile_xids_are_rejected(string text)
    {
        var error = Assert.Throws<TransactionIdFormatException>(() => Xid.Parse(text));
        Assert.StartsWith("Invalid XID", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Oversized_xid_is_rejected_and_the_message_is_truncated()
    {
        var hostile = "54504331_" + new string('a', 300) + "_1";
        var error = Assert.Throws<TransactionIdFormatException>(() => Xid.Parse(hostile));
        Assert.Contains("chars)", error.Message, StringComparison.Ordinal);
        Assert.True(error.Message.Length < 400);
        Assert.Throws<TransactionIdFormatException>(() => Xid.Create(1, new string('a', 65), "1"));
    }

    [Theory]
    [InlineData("")]
    [InlineData("-a")]
    [InlineData("a-")]
    [InlineData("A")]
    [InlineData("a.b")]
    [InlineData("a_b")]
    [InlineData("abcdefghijklmnopqrstuvwxy")]
    public void Invalid_node_ids_are_rejected(string text)
    {
        Assert.Throws<TransactionIdFormatException>(() => NodeId.Parse(text));
        Assert.False(NodeId.TryParse(text, out _));
    }

    [Fact]
    public void Foreign_xids_parse_but_carry_no_twopc_transaction()
    {
        var foreign = Xid.Parse("00000001_some-other.tm_b1");
        Assert.Equal(1, foreign.FormatId);
        Assert.Null(foreign.TryGetGlobalTransactionId());
        Assert.Null(Xid.Create(Xid.TwoPCFormatId, "not-a-twopc-id", "1").TryGetGlobalTransactionId());
    }
}
