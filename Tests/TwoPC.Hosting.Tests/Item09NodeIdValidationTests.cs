using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace TwoPC.Hosting.Tests;

/// <summary>Issue 15 item 9(b): a bad node id is reported once, with the reason.</summary>
public sealed class Item09NodeIdValidationTests
{
    [Theory]
    [InlineData("Bad Node", "only a-z, 0-9 and '-' are allowed")]
    [InlineData("-orders", "it must not start or end with '-'")]
    [InlineData("orders-node-with-a-far-too-long-name", "it is longer than 24 characters")]
    public async Task Item09_an_invalid_NodeId_is_reported_once_with_its_reason(string nodeId, string reason)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["TwoPC:NodeId"] = nodeId, ["TwoPC:LogDirectory"] = "/tmp/x" });
        builder.Services.AddTwoPhaseCommit(builder.Configuration.GetSection(TwoPCOptions.SectionName));
        using var host = builder.Build();

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        var failure = Assert.Single(error.Failures);
        Assert.StartsWith("TwoPC:NodeId", failure, StringComparison.Ordinal);
        Assert.Contains(reason, failure, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Item09_a_missing_NodeId_is_reported_once()
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["TwoPC:LogDirectory"] = "/tmp/x" });
        builder.Services.AddTwoPhaseCommit(builder.Configuration.GetSection(TwoPCOptions.SectionName));
        using var host = builder.Build();

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.StartsWith("TwoPC:NodeId is required", Assert.Single(error.Failures), StringComparison.Ordinal);
    }
}
