using System.Globalization;
using System.IO.Hashing;
using System.Text;
using TwoPC.Transactions;

namespace TwoPC.Protocol;

/// <summary>
/// Where the decision of a last-resource transaction lives, written into its prepared branches' XIDs: branch
/// qualifier <c>{n:x}.m{h:x8}</c>, where <c>h</c> is XxHash32 of the last resource's resource-manager name. Recovery
/// reads the suffix of an orphan to know which database's marker table to fence in; a branch without it belongs to
/// the present protocol (its decision, if any, is in the log).
/// </summary>
internal static class LastResourceXid
{
    private const string Marker = ".m";

    /// <summary>XxHash32 of the UTF-8 name.</summary>
    public static uint Hash(string resourceManager) => XxHash32.HashToUInt32(Encoding.UTF8.GetBytes(resourceManager));

    /// <summary>The XID of branch <paramref name="branch"/> of a transaction whose decision lives with <paramref name="lastResourceHash"/>.</summary>
    public static Xid ForBranch(GlobalTransactionId transaction, int branch, uint lastResourceHash) =>
        Xid.Create(Xid.TwoPCFormatId, transaction.ToString(), string.Create(CultureInfo.InvariantCulture, $"{branch:x}{Marker}{lastResourceHash:x8}"));

    /// <summary>Reads the last resource's name hash from a TwoPC branch qualifier; false for a branch of the present protocol.</summary>
    public static bool TryGetHash(Xid xid, out uint lastResourceHash)
    {
        lastResourceHash = 0;
        var bqual = xid.BranchQualifier.AsSpan();
        var at = bqual.IndexOf(Marker, StringComparison.Ordinal);
        return xid.FormatId == Xid.TwoPCFormatId
            && at > 0
            && bqual.Length - at - Marker.Length == 8
            && uint.TryParse(bqual[(at + Marker.Length)..], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out lastResourceHash);
    }
}
