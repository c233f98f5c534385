namespace TwoPC.Transactions;

/// <summary>
/// Thrown when a node id, global transaction id or XID is malformed: wrong characters, wrong
/// length, non-canonical numbers or a missing part. The message says what was wrong; the input
/// is quoted only in a sanitised, truncated form because it may be hostile.
/// </summary>
public sealed class TransactionIdFormatException : FormatException
{
    /// <summary>Creates the exception with a message that already describes the problem.</summary>
    public TransactionIdFormatException(string message) : base(message) { }

    /// <summary>Creates the exception.</summary>
    public TransactionIdFormatException() { }

    /// <summary>Creates the exception with an inner exception.</summary>
    public TransactionIdFormatException(string message, Exception innerException) : base(message, innerException) { }

    /// <summary>Renders untrusted input for an error message: at most 80 printable ASCII characters, the rest as <c>?</c>.</summary>
    /// <param name="input">The untrusted text.</param>
    /// <returns>The quoted, truncated text, safe to log and show.</returns>
    public static string Sanitize(ReadOnlySpan<char> input)
    {
        const int Max = 80;
        var length = Math.Min(input.Length, Max);
        var chars = new char[length];
        for (var i = 0; i < length; i++)
        {
            var c = input[i];
            chars[i] = c is >= ' ' and <= '~' ? c : '?';
        }

        var text = new string(chars);
        return input.Length > Max ? $"\"{text}\"… ({input.Length} chars)" : $"\"{text}\"";
    }
}
