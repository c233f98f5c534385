using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using TwoPC.Hosting;
using TwoPC.Participants.PostgreSql;
using TwoPC.Participants.RabbitMq;
using TwoPC.Protocol;

namespace TwoPC.Samples.Readme;

/// <summary>README "In a Generic Host" and the TwoPC.Hosting package README.</summary>
public static class HostingSnippets
{
    /// <summary>README.md, section "In a Generic Host (microservices)".</summary>
    public static async Task<IHost> StartAsync(HostApplicationBuilder builder)
    {
        var config = builder.Configuration;
        #region readme
        // packages: TwoPC.Hosting, TwoPC.Participants.PostgreSql, TwoPC.Participants.RabbitMq
        // usings: Microsoft.Extensions.DependencyInjection, TwoPC.Hosting, TwoPC.Participants.PostgreSql, TwoPC.Participants.RabbitMq, TwoPC.Protocol
        builder.Services.AddTwoPhaseCommit(config.GetSection("TwoPC"))   // TwoPC:NodeId, TwoPC:LogDirectory, ...
            .AddPostgres("orders-db", config.GetConnectionString("Orders")!)
            .AddPostgres("payments-db", config.GetConnectionString("Payments")!)
            .AddRabbitMq("events", new Uri(config["RabbitMq:Uri"]!));
        var host = builder.Build();
        await host.StartAsync();   // recovery runs before this returns

        var coordinator = host.Services.GetRequiredService<TransactionCoordinator>();
        var orders = host.Services.GetRequiredKeyedService<PostgresResourceManager>("orders-db");
        var payments = host.Services.GetRequiredKeyedService<PostgresResourceManager>("payments-db");
        var events = host.Services.GetRequiredKeyedService<RabbitMqResourceManager>("events");
        #endregion
        _ = (coordinator, orders, payments, events);
        return host;
    }

    /// <summary>Coordinator/TwoPC.Hosting/README.md.</summary>
    public static void Package(HostApplicationBuilder builder)
    {
        #region package
        // using TwoPC.Hosting; using TwoPC.Participants.PostgreSql; using TwoPC.Participants.RabbitMq;
        builder.Services.AddTwoPhaseCommit(builder.Configuration.GetSection("TwoPC"))   // TwoPC:NodeId, TwoPC:LogDirectory, ...
            .AddPostgres("orders", builder.Configuration.GetConnectionString("Orders")!)  // TwoPC.Participants.PostgreSql
            .AddRabbitMq("events", new Uri(builder.Configuration["RabbitMq:Uri"]!));      // TwoPC.Participants.RabbitMq
        // inject TransactionCoordinator, and [FromKeyedServices("orders")] PostgresResourceManager orders
        #endregion
    }
}
