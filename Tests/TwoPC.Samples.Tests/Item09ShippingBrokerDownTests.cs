using System.Net;
using Microsoft.AspNetCore.Builder;
using RabbitMQ.Client;
using TwoPC.Samples.Shipping;
using TwoPC.TestServers;
using TwoPC.TestServers.Internal;
using TwoPC.Testing;

namespace TwoPC.Samples.Tests;

/// <summary>
/// Issue 15 item 9(d): the shipping service started while RabbitMQ is down starts anyway (it used to retry for 60 s and
/// then die), answers 503 on /health, and starts consuming as soon as the broker is up — like the RabbitMQ resource
/// manager's lazy connection.
/// </summary>
public sealed class Item09ShippingBrokerDownTests
{
    [Fact]
    public async Task Item09_the_shipping_service_starts_without_its_broker_and_consumes_once_it_is_up()
    {
        await using var postgres = await PostgresServer.StartAsync(new PostgresServerOptions { Fsync = false });
        await using var rabbit = await RabbitMqServer.StartAsync();
        await rabbit.StopAsync(); // the broker is down when the service starts; the same port comes back later

        var url = $"http://127.0.0.1:{FreePort.OnLoopback()}";
        await using var app = await ShippingService.BuildAsync([
            $"--Urls={url}",
            $"--ConnectionStrings:Shipping={postgres.ConnectionString("shipping")}",
            $"--RabbitMq:Uri={rabbit.AmqpUri}",
            "--Logging:LogLevel:Default=Warning",
        ]);
        using var http = new HttpClient { BaseAddress = new Uri(url), Timeout = TimeSpan.FromSeconds(30) };

        // Before the fix this threw BrokerUnreachableException (after retrying for 60 s), ending the host.
        await app.StartAsync();

        using (var waiting = await http.GetAsync(new Uri("/health", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, waiting.StatusCode);
            Assert.Contains("Not consuming yet", await waiting.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        await rabbit.StartAgainAsync();

        await Eventually.TrueAsync(async () =>
        {
            using var health = await http.GetAsync(new Uri("/health", UriKind.Relative));
            return health.StatusCode == HttpStatusCode.OK;
        }, TimeSpan.FromSeconds(60));
        var factory = new ConnectionFactory { Uri = rabbit.AmqpUri };
        await using var connection = await factory.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();
        Assert.Equal(1u, await channel.ConsumerCountAsync(ShippingService.Queue));
        await app.StopAsync();
    }
}
