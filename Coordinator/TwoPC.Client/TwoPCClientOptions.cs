namespace TwoPC.Client;

/// <summary>
/// Where the standalone coordinator is and how to authenticate to it, for
/// <see cref="TwoPCClientServiceCollectionExtensions.AddTwoPCClient(Microsoft.Extensions.DependencyInjection.IServiceCollection, Action{TwoPCClientOptions})"/>
/// (section <c>TwoPCClient</c> by convention). Checked when the host starts.
/// </summary>
public sealed class TwoPCClientOptions
{
    /// <summary>The conventional configuration section name.</summary>
    public const string SectionName = "TwoPCClient";

    /// <summary>The coordinator's absolute URL (required), for example <c>http://coordinator:8080/</c>.</summary>
    public Uri? BaseAddress { get; set; }

    /// <summary>This client's API key (the server's <c>Coordinator:Clients:{name}:ApiKey</c>), sent by <see cref="ApiKeyHandler"/>; none for an anonymous caller.</summary>
    public string? ApiKey { get; set; }

    /// <summary>The admin API key (the server's <c>Admin:ApiKey</c>); when set, <see cref="TwoPCAdminClient"/> is registered too.</summary>
    public string? AdminApiKey { get; set; }
}
