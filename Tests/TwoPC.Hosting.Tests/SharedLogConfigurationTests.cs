using Dapper;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Npgsql;
using TwoPC.Hosting;
using TwoPC.Protocol;

namespace TwoPC.Hosting.Tests;

/// <summary><c>TwoPC:Log:Kind = PostgreSql</c>: the host runs the coordinator on the shared PostgreSQL log.</summary>
public sealed class SharedLogConfigurationTests(PostgresAndRabbitMqFixture fixture) : IClassFixture<PostgresAndRabbitMqFixture>
{
    [Fact]
    public async Task The_shared_log_settings_bind_and_the_coordinator_holds_a_lease_on_it()
    {
        var database = await fixture.Postgres.CreateDatabaseAsync();
        using var host = Build(new()
        {
            ["TwoPC:NodeId"] = "orders-1",
            ["TwoPC:Log:Kind"] = "PostgreSql",
            ["TwoPC:Log:ConnectionString"] = database,
            ["TwoPC:Log:Schema"] = "coordinator_log",
            ["TwoPC:Log:LeaseDuration"] = "00:00:07",
            ["TwoPC:Log:RenewInterval"] = "00:00:02",
        });
        await host.StartAsync();

        var coordinator = host.Services.GetRequiredService<TransactionCoordinator>();
        var lease = Assert.IsType<TwoPC.Durability.NodeLease>(coordinator.Lease);
        Assert.Equal("orders-1", lease.Node.Value);
        await using (var connection = new NpgsqlConnection(database))
        {
            var row = await connection.QuerySingleAsync<(long Epoch, double Seconds)>(
                "SELECT epoch, extract(epoch FROM expires_at - now())::float8 FROM coordinator_log.nodes WHERE node_id = 'orders-1'");
            Assert.Equal((long)lease.Epoch, row.Epoch);
            Assert.InRange(row.Seconds, 0.5, 7.5); // the 7 s lease, not the 10 s default
        }

        var health = await host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync();
        Assert.Equal(lease.Epoch, health.Entries["twopc"].Data["lease_epoch"]);
        await host.StopAsync();
    }

    [Theory]
    [InlineData("PostgreSql", null, "TwoPC:Log:ConnectionString is required")]
    [InlineData("File", null, "TwoPC:LogDirectory is required")]
    public async Task A_log_kind_without_its_location_fails_the_start_naming_the_setting(string kind, string? connectionString, string expected)
    {
        using var host = Build(new() { ["TwoPC:NodeId"] = "orders-1", ["TwoPC:Log:Kind"] = kind, ["TwoPC:Log:ConnectionString"] = connectionString });
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_unknown_key_under_TwoPC_Log_fails_the_start_naming_it()
    {
        using var host = Build(new() { ["TwoPC:NodeId"] = "orders-1", ["TwoPC:LogDirectory"] = "/tmp/unused", ["TwoPC:Log:LeaseDurations"] = "00:00:05" });
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());
        Assert.Contains("TwoPC:Log:LeaseDurations is not a TwoPC log setting", error.Message, StringComparison.Ordinal);
        Assert.Contains("Log:LeaseDuration", error.Message, StringComparison.Ordinal);
    }

    private static IHost Build(Dictionary<string, string?> settings)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(settings);
        builder.Services.AddTwoPhaseCommit(builder.Configuration.GetSection(TwoPCOptions.SectionName));
        return builder.Build();
    }
}
