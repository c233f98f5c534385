using System.Globalization;

namespace TwoPC.Transactions;

/// <summary>
/// Identifies one global transaction, unique across coordinator nodes (the <see cref="Node"/>) and
/// across restarts of one node (the <see cref="Epoch"/>, a counter the transaction log makes durable
/// at every start), with a per-epoch <see cref="Sequence"/>.
/// </summary>
/// <remarks>
/// Canonical text form (also the XA gtrid): <c>{node}.{epoch}.{sequence}</c>, numbers in lower-case
/// hexadecimal without leading zeros, at most 58 ASCII bytes. <see cref="Parse"/> accepts only that
/// exact form, so one id has exactly one spelling.
/// </remarks>
public readonly record struct GlobalTransactionId(NodeId Node, ulong Epoch, ulong Sequence) : ISpanFormattable
{
    /// <summary>The longest canonical text form.</summary>
    public const int MaxLength = NodeId.MaxLength + 1 + 16 + 1 + 16;

    /// <summary>Parses the canonical text form of an untrusted id.</summary>
    /// <exception cref="TransactionIdFormatException">The text is not a canonical global transaction id.</exception>
    public static GlobalTransactionId Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return TryParseCore(text, out var id, out var error)
            ? id
            : throw new TransactionIdFormatException($"Invalid global transaction id {TransactionIdFormatException.Sanitize(text)}: {error}");
    }

    /// <summary>Tries to parse the canonical text form without throwing.</summary>
    public static bool TryParse(ReadOnlySpan<char> text, out GlobalTransactionId id) => TryParseCore(text, out id, out _);

    private static bool TryParseCore(ReadOnlySpan<char> text, out GlobalTransactionId id, out string error)
    {
        id = default;
        if (text.Length > MaxLength)
        {
            error = $"longer than {MaxLength} characters";
            return false;
        }

        var firstDot = text.IndexOf('.');
        var lastDot = text.LastIndexOf('.');
        if (firstDot < 0 || firstDot == lastDot)
        {
            error = "expected {node}.{epoch}.{sequence}";
            return false;
        }

        if (!NodeId.TryValidate(text[..firstDot], out var nodeError))
        {
            error = "node id " + nodeError;
            return false;
        }

        if (!TryParseHex(text[(firstDot + 1)..lastDot], out var epoch) || !TryParseHex(text[(lastDot + 1)..], out var sequence))
        {
            error = "epoch and sequence must be lower-case hexadecimal without leading zeros";
            return false;
        }

        id = new GlobalTransactionId(NodeId.Parse(text[..firstDot].ToString()), epoch, sequence);
        error = string.Empty;
        return true;
    }

    internal static bool TryParseHex(ReadOnlySpan<char> digits, out ulong value)
    {
        value = 0;
        if (digits.IsEmpty || digits.Length > 16 || (digits.Length > 1 && digits[0] == '0'))
        {
            return false;
        }

        foreach (var c in digits)
        {
            if (c is not ((>= '0' and <= '9') or (>= 'a' and <= 'f')))
            {
                return false;
            }
        }

        return ulong.TryParse(digits, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value);
    }

    /// <inheritdoc />
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Node.Value}.{Epoch:x}.{Sequence:x}");

    /// <inheritdoc />
    public string ToString(string? format, IFormatProvider? formatProvider) => ToString();

    /// <inheritdoc />
    public bool TryFormat(Span<char> destination, out int charsWritten, ReadOnlySpan<char> format, IFormatProvider? provider) =>
        destination.TryWrite(CultureInfo.InvariantCulture, $"{Node.Value}.{Epoch:x}.{Sequence:x}", out charsWritten);
}
