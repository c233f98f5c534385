using System.Net;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using TwoPC.Client;

namespace TwoPC.Participants.Remote.Tests;

/// <summary>Issue 15, item 13: what AddTwoPCClient puts on the coordinator's requests (no server: the requests are captured).</summary>
public sealed class ClientRegistrationTests
{
    [Fact]
    public async Task The_client_sends_its_api_key_to_the_base_address_even_without_a_trailing_slash()
    {
        var captured = new CapturingHandler("""{"nodeId":"n-1","epoch":3}""");
        var services = new ServiceCollection();
        services.AddTwoPCClient(o =>
        {
            o.BaseAddress = new Uri("http://coordinator.test/api");
            o.ApiKey = "client-key";
        }).ConfigurePrimaryHttpMessageHandler(() => captured);
        using var provider = services.BuildServiceProvider();

        var info = await provider.GetRequiredService<TwoPCClient>().GetInfoAsync();

        Assert.Equal(new CoordinatorInfoDto("n-1", 3), info);
        var request = Assert.Single(captured.Requests);
        Assert.Equal("http://coordinator.test/api/info", request.Uri);
        Assert.Equal("ApiKey client-key", request.Authorization);
    }

    [Fact]
    public void The_admin_client_needs_the_admin_key()
    {
        var services = new ServiceCollection();
        services.AddTwoPCClient(o => o.BaseAddress = new Uri("http://coordinator.test/"));
        using var provider = services.BuildServiceProvider();
        var error = Assert.Throws<InvalidOperationException>(() => provider.GetRequiredService<TwoPCAdminClient>());
        Assert.Contains("TwoPCClient:AdminApiKey", error.Message, StringComparison.Ordinal);

        var withKey = new ServiceCollection();
        withKey.AddTwoPCClient(o =>
        {
            o.BaseAddress = new Uri("http://coordinator.test/");
            o.AdminApiKey = "admin-key";
        });
        using var admin = withKey.BuildServiceProvider();
        Assert.Equal(new Uri("http://coordinator.test/"), admin.GetRequiredService<TwoPCAdminClient>().Http.BaseAddress);
    }

    private sealed class CapturingHandler(string json) : HttpMessageHandler
    {
        public List<(string Uri, string? Authorization)> Requests { get; } = [];

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Requests.Add((request.RequestUri!.AbsoluteUri, request.Headers.Authorization?.ToString()));
            return Task.FromResult(new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent(json, Encoding.UTF8, "application/json") });
        }
    }
}
