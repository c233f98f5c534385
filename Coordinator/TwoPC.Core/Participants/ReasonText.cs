namespace TwoPC.Participants;

/// <summary>
/// The one rule for free text that comes from outside the coordinator (a participant's No reason, an error message) and
/// is kept: in outcomes, heuristic records, in-doubt reports, the log and every status answer. It is cut to about 1 KiB,
/// so a participant that answers with megabytes cannot make the coordinator hold or repeat them.
/// </summary>
public static class ReasonText
{
    /// <summary>The most characters of a reason that are kept (1024); a longer one is cut and says how long it was.</summary>
    public const int MaxLength = 1024;

    /// <summary>
    /// <paramref name="reason"/> when it has at most <see cref="MaxLength"/> characters; else its first
    /// <see cref="MaxLength"/> characters (never half a surrogate pair) followed by <c>… (truncated, N characters)</c>.
    /// </summary>
    public static string? Truncate(string? reason)
    {
        if (reason is null || reason.Length <= MaxLength)
        {
            return reason;
        }

        var keep = char.IsHighSurrogate(reason[MaxLength - 1]) ? MaxLength - 1 : MaxLength;
        return string.Concat(reason.AsSpan(0, keep), $"… (truncated, {reason.Length} characters)");
    }
}
