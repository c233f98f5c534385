using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;
using TwoPC.Protocol;

namespace TwoPC.Hosting;

/// <summary>
/// Configuration of an embedded coordinator (section <c>TwoPC</c> by convention): the coordinator's own settings
/// (<see cref="TransactionCoordinatorOptions"/>, one source for both) plus where its write-ahead log lives. Validated
/// when the host starts: a bad value fails the start with a message naming the setting.
/// </summary>
public sealed class TwoPCOptions : TransactionCoordinatorOptions
{
    /// <summary>The conventional configuration section name.</summary>
    public const string SectionName = "TwoPC";

    /// <summary>This coordinator's node id (required, unique among coordinators sharing resources): 1-24 of <c>a-z 0-9 -</c>.</summary>
    /// <remarks>Checked once, by the coordinator's own rule (<see cref="TransactionCoordinatorOptions.Validate"/>), not by an
    /// attribute as well: two copies of the rule reported every bad node id twice.</remarks>
    public override string NodeId
    {
        get => base.NodeId;
        set => base.NodeId = value;
    }

    /// <summary>Directory of the write-ahead log (required with the file log, the default; one coordinator per directory).</summary>
    public string? LogDirectory { get; set; }

    /// <summary>
    /// Which log holds the coordinator's decisions (section <c>TwoPC:Log</c>): the file write-ahead log in
    /// <see cref="LogDirectory"/> (default), or a PostgreSQL log shared by several coordinator nodes (high availability).
    /// </summary>
    public TwoPCLogOptions Log { get; set; } = new();

    /// <summary>Size of a log segment in bytes. Default 64 MiB.</summary>
    [Range(4096, long.MaxValue, ErrorMessage = "TwoPC:SegmentSize must be at least 4096 bytes.")]
    public long SegmentSize { get; set; } = 64 * 1024 * 1024;
}

/// <summary>Checks the timing settings together, with the coordinator's own rules, naming the setting that is wrong.</summary>
internal sealed class TwoPCOptionsValidator : IValidateOptions<TwoPCOptions>
{
    public ValidateOptionsResult Validate(string? name, TwoPCOptions options)
    {
        if (options.Log.Kind == TwoPCLogKind.File && options.LogDirectory is null)
        {
            return ValidateOptionsResult.Fail("TwoPC:LogDirectory is required: the directory of the coordinator's write-ahead log (or set TwoPC:Log:Kind to PostgreSql for a shared log).");
        }

        if (options.Log.Kind == TwoPCLogKind.PostgreSql && string.IsNullOrWhiteSpace(options.Log.ConnectionString))
        {
            return ValidateOptionsResult.Fail("TwoPC:Log:ConnectionString is required with TwoPC:Log:Kind = PostgreSql: the database of the shared transaction log.");
        }

        if (options.Log.Kind is not (TwoPCLogKind.File or TwoPCLogKind.PostgreSql))
        {
            return ValidateOptionsResult.Fail($"TwoPC:Log:Kind must be File or PostgreSql (got {options.Log.Kind}).");
        }

        try
        {
            options.Validate();
            return ValidateOptionsResult.Success;
        }
        catch (ArgumentException ex)
        {
            // The message without ArgumentException's " (Parameter 'X')" suffix: it already names the setting.
            var message = ex.ParamName is { } parameter ? ex.Message.Replace($" (Parameter '{parameter}')", string.Empty, StringComparison.Ordinal) : ex.Message;
            return ValidateOptionsResult.Fail(message.Replace("TransactionCoordinatorOptions.", "TwoPC:", StringComparison.Ordinal));
        }
    }
}
