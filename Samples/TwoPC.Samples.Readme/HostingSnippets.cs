using System.Diagnostics.Metrics;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using RabbitMQ.Client;
using TwoPC.Hosting;
using TwoPC.Participants.PostgreSql;
using TwoPC.Participants.RabbitMq;

namespace TwoPC.Samples.Readme;

/// <summary>README "In a Generic Host" and the TwoPC.Hosting package README.</summary>
public static class HostingSnippets
{
    /// <summary>README.md, section "In a Generic Host (microservices)".</summary>
    public static void Configure(HostApplicationBuilder builder)
    {
        #region readme
        // packages: TwoPC.Hosting, TwoPC.Participants.PostgreSql, TwoPC.Participants.RabbitMq (no Npgsql.DependencyInjection);
        // usings: System.Diagnostics.Metrics, Microsoft.Extensions.Logging, Npgsql, RabbitMQ.Client, TwoPC.Hosting,
        // TwoPC.Participants.PostgreSql, TwoPC.Participants.RabbitMq. The factories pass the host's logging and metrics on.
        builder.Services.AddSingleton(_ => NpgsqlDataSource.Create(builder.Configuration.GetConnectionString("Orders")!));
        builder.Services.AddTwoPhaseCommit(builder.Configuration.GetSection("TwoPC"))   // TwoPC:NodeId, TwoPC:LogDirectory, ...
            .AddResourceManager((sp, ct) => PostgresResourceManager.CreateAsync("orders", sp.GetRequiredService<NpgsqlDataSource>(),
                loggerFactory: sp.GetRequiredService<ILoggerFactory>(), meterFactory: sp.GetService<IMeterFactory>(), cancellationToken: ct))
            .AddResourceManager((sp, ct) => RabbitMqResourceManager.CreateAsync("events", new ConnectionFactory { Uri = new(builder.Configuration["RabbitMq:Uri"]!) },
                loggerFactory: sp.GetRequiredService<ILoggerFactory>(), meterFactory: sp.GetService<IMeterFactory>(), cancellationToken: ct));
        // inject TransactionCoordinator (and the typed resource managers) where you need them
        #endregion
    }

    /// <summary>Coordinator/TwoPC.Hosting/README.md.</summary>
    public static void Package(HostApplicationBuilder builder)
    {
        #region package
        // using Microsoft.Extensions.Logging; using Npgsql; using TwoPC.Hosting; using TwoPC.Participants.PostgreSql;
        builder.Services.AddSingleton(_ => NpgsqlDataSource.Create(builder.Configuration.GetConnectionString("Orders")!));
        builder.Services.AddTwoPhaseCommit(builder.Configuration.GetSection("TwoPC"))   // TwoPC:NodeId, TwoPC:LogDirectory, ...
            .AddResourceManager((sp, ct) => PostgresResourceManager.CreateAsync("orders", sp.GetRequiredService<NpgsqlDataSource>(),
                loggerFactory: sp.GetRequiredService<ILoggerFactory>(), cancellationToken: ct));
        // inject TransactionCoordinator where you need it
        #endregion
    }
}
