using System.Diagnostics.CodeAnalysis;

namespace TwoPC.Client;

/// <summary>
/// The rule for a resource manager's name on the wire: what a participant registers with, what an operator names when
/// forcing a branch. The coordinator applies the same rule to every resource manager it registers.
/// </summary>
public static class ResourceManagerName
{
    /// <summary>The longest name, in characters.</summary>
    public const int MaxLength = 64;

    /// <summary>The rule in words, for error messages.</summary>
    public const string Rule = "1-64 printable characters";

    /// <summary>Whether <paramref name="name"/> is 1 to <see cref="MaxLength"/> characters with no control character.</summary>
    public static bool IsValid([NotNullWhen(true)] string? name) => !string.IsNullOrEmpty(name) && name.Length <= MaxLength && !name.Any(char.IsControl);
}
