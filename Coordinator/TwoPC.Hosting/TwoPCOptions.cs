using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;
using TwoPC.Protocol;

namespace TwoPC.Hosting;

/// <summary>
/// Configuration of an embedded coordinator (section <c>TwoPC</c> by convention). Validated when the
/// host starts: a bad value fails the start with a message naming the setting.
/// </summary>
public sealed class TwoPCOptions
{
    /// <summary>The conventional configuration section name.</summary>
    public const string SectionName = "TwoPC";

    /// <summary>This coordinator's node id (required, unique among coordinators sharing resources): 1-24 of <c>a-z 0-9 -</c>.</summary>
    [Required(ErrorMessage = "TwoPC:NodeId is required: set a node id unique among the coordinators that share resources (1-24 characters of a-z, 0-9, '-').")]
    [RegularExpression("^[a-z0-9]([a-z0-9-]{0,22}[a-z0-9])?$", ErrorMessage = "TwoPC:NodeId must be 1-24 characters of a-z, 0-9 and '-', not starting or ending with '-'.")]
    public string? NodeId { get; set; }

    /// <summary>Directory of the write-ahead log (required; one coordinator per directory).</summary>
    [Required(ErrorMessage = "TwoPC:LogDirectory is required: the directory of the coordinator's write-ahead log.")]
    public string? LogDirectory { get; set; }

    /// <summary>Size of a log segment in bytes. Default 64 MiB.</summary>
    [Range(4096, long.MaxValue, ErrorMessage = "TwoPC:SegmentSize must be at least 4096 bytes.")]
    public long SegmentSize { get; set; } = 64 * 1024 * 1024;

    /// <summary>See <see cref="TransactionCoordinatorOptions.DefaultTimeout"/>.</summary>
    public TimeSpan DefaultTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>See <see cref="TransactionCoordinatorOptions.MaxTimeout"/>.</summary>
    public TimeSpan MaxTimeout { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>See <see cref="TransactionCoordinatorOptions.OrphanSafetyInterval"/>.</summary>
    public TimeSpan OrphanSafetyInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>See <see cref="TransactionCoordinatorOptions.RecoveryInterval"/>.</summary>
    public TimeSpan RecoveryInterval { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>See <see cref="TransactionCoordinatorOptions.RetryBaseDelay"/>.</summary>
    public TimeSpan RetryBaseDelay { get; set; } = TimeSpan.FromMilliseconds(50);

    /// <summary>See <see cref="TransactionCoordinatorOptions.RetryMaxDelay"/>.</summary>
    public TimeSpan RetryMaxDelay { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>See <see cref="TransactionCoordinatorOptions.BranchCallTimeout"/>.</summary>
    public TimeSpan BranchCallTimeout { get; set; } = TimeSpan.FromSeconds(30);

    internal TransactionCoordinatorOptions ToCoordinatorOptions() => new()
    {
        NodeId = NodeId ?? string.Empty,
        DefaultTimeout = DefaultTimeout,
        MaxTimeout = MaxTimeout,
        OrphanSafetyInterval = OrphanSafetyInterval,
        RecoveryInterval = RecoveryInterval,
        RetryBaseDelay = RetryBaseDelay,
        RetryMaxDelay = RetryMaxDelay,
        BranchCallTimeout = BranchCallTimeout,
    };
}

/// <summary>Checks the timing settings together, with the coordinator's own rules, naming the setting that is wrong.</summary>
internal sealed class TwoPCOptionsValidator : IValidateOptions<TwoPCOptions>
{
    public ValidateOptionsResult Validate(string? name, TwoPCOptions options)
    {
        if (options.NodeId is null || options.LogDirectory is null)
        {
            return ValidateOptionsResult.Skip; // DataAnnotations reports the missing values
        }

        try
        {
            options.ToCoordinatorOptions().Validate();
            return ValidateOptionsResult.Success;
        }
        catch (ArgumentException ex)
        {
            return ValidateOptionsResult.Fail(ex.Message.Replace("TransactionCoordinatorOptions.", "TwoPC:", StringComparison.Ordinal));
        }
    }
}
