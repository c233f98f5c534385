namespace TwoPC.Participants;

/// <summary>
/// The rule for a resource manager's <see cref="IResourceManager.Name"/>: 1-64 characters, none of them a control
/// character. The name is written into the log and shown to operators, so every place that accepts one checks it here.
/// </summary>
public static class ResourceManagerName
{
    /// <summary>The longest name allowed.</summary>
    public const int MaxLength = 64;

    /// <summary><see langword="true"/> when <paramref name="name"/> may name a resource manager.</summary>
    public static bool IsValid(string? name) => !string.IsNullOrEmpty(name) && name.Length <= MaxLength && !name.Any(char.IsControl);
}
