using TwoPC.Transactions;

namespace TwoPC.Participants.PostgreSql;

/// <summary>
/// Turns an XID into the string literal of <c>PREPARE TRANSACTION</c> / <c>COMMIT PREPARED</c>,
/// which cannot take a parameter. The XID's canonical text is already restricted to
/// <c>a-z 0-9 . - _</c>; this re-checks it right before it meets SQL, so no other text ever can.
/// </summary>
internal static class PostgresGid
{
    /// <summary>PostgreSQL's limit: a gid must be shorter than 200 bytes.</summary>
    public const int MaxLength = 199;

    public static string Literal(Xid xid) => Literal(xid.ToString());

    public static string Literal(string gid)
    {
        ArgumentNullException.ThrowIfNull(gid);
        if (gid.Length is 0 or > MaxLength)
        {
            throw new TransactionIdFormatException($"Refusing gid {TransactionIdFormatException.Sanitize(gid)}: it must be 1-{MaxLength} characters.");
        }

        foreach (var c in gid)
        {
            if (c is not ((>= 'a' and <= 'z') or (>= '0' and <= '9') or '.' or '-' or '_'))
            {
                throw new TransactionIdFormatException($"Refusing gid {TransactionIdFormatException.Sanitize(gid)}: only a-z, 0-9, '.', '-' and '_' may reach PREPARE TRANSACTION.");
            }
        }

        return "'" + gid + "'";
    }
}
