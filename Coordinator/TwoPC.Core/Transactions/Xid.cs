using System.Globalization;

namespace TwoPC.Transactions;

/// <summary>
/// An XA-style transaction branch identifier: format id, global transaction id (gtrid) and branch
/// qualifier (bqual). Participants use <see cref="ToString"/> as their external id (for PostgreSQL,
/// the gid of <c>PREPARE TRANSACTION</c>), so the text form is restricted to a safe character set.
/// </summary>
/// <remarks>
/// Canonical text form: <c>{formatId:x8}_{gtrid}_{bqual}</c>; gtrid and bqual are 1 to 64 characters
/// from <c>a-z 0-9 . -</c>. The longest XID is 138 ASCII bytes (PostgreSQL allows 199). The text can
/// be embedded in a SQL string literal without escaping because it never contains a quote,
/// backslash, whitespace or non-ASCII character, and <see cref="Parse"/> rejects anything else.
/// </remarks>
public sealed record Xid
{
    /// <summary>The XA format id of every XID TwoPC creates (ASCII "TPC1").</summary>
    public const int TwoPCFormatId = 0x54504331;

    /// <summary>Maximum length of the gtrid and of the bqual, as in XA.</summary>
    public const int MaxPartLength = 64;

    /// <summary>Maximum length of the canonical text form.</summary>
    public const int MaxLength = 8 + 1 + MaxPartLength + 1 + MaxPartLength;

    private Xid(int formatId, string globalId, string branchQualifier)
    {
        FormatId = formatId;
        GlobalId = globalId;
        BranchQualifier = branchQualifier;
    }

    /// <summary>The XA format id.</summary>
    public int FormatId { get; }

    /// <summary>The global transaction id part (gtrid).</summary>
    public string GlobalId { get; }

    /// <summary>The branch qualifier part (bqual); unique among the branches of one global transaction.</summary>
    public string BranchQualifier { get; }

    /// <summary>Creates the XID of branch number <paramref name="branch"/> of a TwoPC global transaction.</summary>
    public static Xid ForBranch(GlobalTransactionId transaction, int branch)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(branch);
        return new Xid(TwoPCFormatId, transaction.ToString(), branch.ToString("x", CultureInfo.InvariantCulture));
    }

    /// <summary>Creates an XID from its parts, validating each.</summary>
    /// <exception cref="TransactionIdFormatException">A part is empty, too long or has a character outside <c>a-z 0-9 . -</c>.</exception>
    public static Xid Create(int formatId, string globalId, string branchQualifier)
    {
        ArgumentNullException.ThrowIfNull(globalId);
        ArgumentNullException.ThrowIfNull(branchQualifier);
        if (!IsValidPart(globalId) || !IsValidPart(branchQualifier))
        {
            throw new TransactionIdFormatException(
                $"Invalid XID parts {TransactionIdFormatException.Sanitize(globalId)} / {TransactionIdFormatException.Sanitize(branchQualifier)}: each must be 1-{MaxPartLength} characters from a-z, 0-9, '.', '-'.");
        }

        return new Xid(formatId, globalId, branchQualifier);
    }

    /// <summary>Parses the canonical text form of an untrusted XID.</summary>
    /// <exception cref="TransactionIdFormatException">The text is not a canonical XID.</exception>
    public static Xid Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return TryParse(text, out var xid)
            ? xid
            : throw new TransactionIdFormatException(
                $"Invalid XID {TransactionIdFormatException.Sanitize(text)}: expected {{formatId as 8 lower-case hex digits}}_{{gtrid}}_{{bqual}}, parts of 1-{MaxPartLength} characters from a-z, 0-9, '.', '-'.");
    }

    /// <summary>Tries to parse the canonical text form without throwing.</summary>
    public static bool TryParse(string? text, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out Xid? xid)
    {
        xid = null;
        if (text is null || text.Length > MaxLength || text.Length < 12 || text[8] != '_')
        {
            return false;
        }

        var span = text.AsSpan();
        var formatHex = span[..8];
        foreach (var c in formatHex)
        {
            if (c is not ((>= '0' and <= '9') or (>= 'a' and <= 'f')))
            {
                return false;
            }
        }

        var rest = span[9..];
        var separator = rest.IndexOf('_');
        if (separator < 0 || rest[(separator + 1)..].Contains('_'))
        {
            return false;
        }

        var gtrid = rest[..separator];
        var bqual = rest[(separator + 1)..];
        if (!IsValidPart(gtrid) || !IsValidPart(bqual))
        {
            return false;
        }

        var formatId = int.Parse(formatHex, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture);
        xid = new Xid(formatId, gtrid.ToString(), bqual.ToString());
        return true;
    }

    /// <summary>
    /// Returns the TwoPC global transaction id inside this XID, or <see langword="null"/> when the XID has
    /// another format id or a gtrid that is not a canonical TwoPC id (a foreign branch).
    /// </summary>
    public GlobalTransactionId? TryGetGlobalTransactionId() =>
        FormatId == TwoPCFormatId && GlobalTransactionId.TryParse(GlobalId, out var id) ? id : null;

    /// <summary>The text prefix shared by every XID that <paramref name="node"/> creates (for recovery scans).</summary>
    public static string PrefixFor(NodeId node) => string.Create(CultureInfo.InvariantCulture, $"{TwoPCFormatId:x8}_{node.Value}.");

    private static bool IsValidPart(ReadOnlySpan<char> part)
    {
        if (part.IsEmpty || part.Length > MaxPartLength)
        {
            return false;
        }

        foreach (var c in part)
        {
            if (c is not ((>= 'a' and <= 'z') or (>= '0' and <= '9') or '.' or '-'))
            {
                return false;
            }
        }

        return true;
    }

    /// <inheritdoc />
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{FormatId:x8}_{GlobalId}_{BranchQualifier}");
}
