using System.Reflection;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;

namespace TwoPC.Hosting;

/// <summary>
/// Fails the start on a key under the coordinator's section that nothing reads (a typo such as
/// <c>TwoPC:RollbackAttempt</c> would otherwise be ignored silently and the default used), naming the key and listing
/// the known ones. The binder's own <c>ErrorOnUnknownConfiguration</c> cannot be used: the section is shared with the
/// remote participant SDK's <c>Participant</c> subsection, and its message lists neither the section nor the known keys.
/// </summary>
internal sealed class TwoPCConfigurationKeysValidator(IConfigurationSection section) : IValidateOptions<TwoPCOptions>
{
    /// <summary>Subsections of <c>TwoPC</c> that other TwoPC packages read: the remote participant SDK's settings.</summary>
    internal static readonly string[] OtherSubsections = ["Participant"];

    /// <summary>What the binder sets: every public instance property with a public setter.</summary>
    internal static readonly string[] KnownKeys = [.. typeof(TwoPCOptions)
        .GetProperties(BindingFlags.Public | BindingFlags.Instance)
        .Where(p => p.SetMethod is { IsPublic: true })
        .Select(p => p.Name)
        .Distinct(StringComparer.Ordinal)
        .Order(StringComparer.Ordinal)];

    /// <summary>The keys of the <c>Log</c> subsection (<see cref="TwoPCLogOptions"/>).</summary>
    internal static readonly string[] KnownLogKeys = [.. typeof(TwoPCLogOptions)
        .GetProperties(BindingFlags.Public | BindingFlags.Instance)
        .Where(p => p.SetMethod is { IsPublic: true })
        .Select(p => p.Name)
        .Order(StringComparer.Ordinal)];

    public ValidateOptionsResult Validate(string? name, TwoPCOptions options)
    {
        var prefix = section.Path.Length > 0 ? section.Path + ":" : string.Empty;
        var failures = section.GetChildren()
            .Select(child => child.Key)
            .Where(key => !KnownKeys.Contains(key, StringComparer.OrdinalIgnoreCase) && !OtherSubsections.Contains(key, StringComparer.OrdinalIgnoreCase))
            .Select(key =>
                $"{prefix}{key} is not a TwoPC setting (a typo?). Known settings: {string.Join(", ", KnownKeys)}; " +
                $"and the remote participant's {prefix}{OtherSubsections[0]}:* section.")
            .Concat(section.GetSection(nameof(TwoPCOptions.Log)).GetChildren()
                .Select(child => child.Key)
                .Where(key => !KnownLogKeys.Contains(key, StringComparer.OrdinalIgnoreCase))
                .Select(key => $"{prefix}Log:{key} is not a TwoPC log setting (a typo?). Known settings: {string.Join(", ", KnownLogKeys.Select(k => "Log:" + k))}."))
            .ToList();
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
