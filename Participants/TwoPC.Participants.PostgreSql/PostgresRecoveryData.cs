using System.Globalization;
using System.Text;

namespace TwoPC.Participants.PostgreSql;

/// <summary>
/// The recovery data of a prepared PostgreSQL branch: its 64-bit transaction id (<c>xid8</c>, epoch included,
/// so it never wraps), as the text <c>xid8=&lt;n&gt;</c> (readable in a log dump). When phase 2 finds no prepared
/// transaction under the gid (42704), <c>pg_xact_status</c> of this id tells whether it committed.
/// </summary>
internal static class PostgresRecoveryData
{
    private const string Prefix = "xid8=";

    public static ReadOnlyMemory<byte> Encode(ulong transactionId) =>
        Encoding.ASCII.GetBytes(Prefix + transactionId.ToString(CultureInfo.InvariantCulture));

    /// <summary>The transaction id, or <see langword="null"/> for empty data (a decision logged by a version that kept
    /// marker rows instead) or anything else.</summary>
    public static ulong? TryDecode(ReadOnlySpan<byte> data)
    {
        if (data.Length <= Prefix.Length || data.Length > Prefix.Length + 20)
        {
            return null;
        }

        var text = Encoding.ASCII.GetString(data);
        return text.StartsWith(Prefix, StringComparison.Ordinal)
            && ulong.TryParse(text.AsSpan(Prefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out var id)
            ? id
            : null;
    }
}
