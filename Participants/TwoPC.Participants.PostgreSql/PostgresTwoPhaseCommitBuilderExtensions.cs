using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using TwoPC.Hosting;

namespace TwoPC.Participants.PostgreSql;

/// <summary>Registers PostgreSQL databases as resource managers of an embedded coordinator (<c>AddTwoPhaseCommit</c>).</summary>
public static class PostgresTwoPhaseCommitBuilderExtensions
{
    /// <summary>
    /// Adds the database at <paramref name="connectionString"/> as the resource manager <paramref name="name"/>. Its
    /// <see cref="NpgsqlDataSource"/> is built with the container's <see cref="ILoggerFactory"/>, registered as the keyed
    /// singleton <see cref="NpgsqlDataSource"/> under <paramref name="name"/> (use it for the application's other queries
    /// too) and disposed by the container. See <see cref="AddPostgres(TwoPhaseCommitBuilder, string, Func{IServiceProvider, NpgsqlDataSource}, Action{PostgresResourceManagerOptions}?)"/>
    /// for what is registered.
    /// </summary>
    /// <param name="builder">The coordinator's builder.</param>
    /// <param name="name">The unique, stable name (the key in the container and in the log).</param>
    /// <param name="connectionString">Where to connect; the role must be able to <c>PREPARE TRANSACTION</c>.</param>
    /// <param name="configure">Settings of the resource manager, applied to the named options <paramref name="name"/>.</param>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("ApiDesign", "RS0026:Do not add multiple public overloads with optional parameters", Justification = "The overloads differ in the type of their required source parameter (connection string, data source, factory), so a call is never ambiguous.")]
    public static TwoPhaseCommitBuilder AddPostgres(this TwoPhaseCommitBuilder builder, string name, string connectionString, Action<PostgresResourceManagerOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentException.ThrowIfNullOrEmpty(connectionString);
        // Container-built (a factory), so the container disposes it when the host is disposed.
        builder.Services.AddKeyedSingleton(name, (sp, _) =>
            new NpgsqlDataSourceBuilder(connectionString).UseLoggerFactory(sp.GetService<ILoggerFactory>()).Build());
        return builder.AddPostgres(name, sp => sp.GetRequiredKeyedService<NpgsqlDataSource>(name), configure);
    }

    /// <summary>
    /// Adds the database of the data source <paramref name="dataSource"/> gives as the resource manager
    /// <paramref name="name"/>, created when the host starts (before recovery) with the container's
    /// <see cref="ILoggerFactory"/>, <see cref="IMeterFactory"/> and <see cref="TimeProvider"/> (when registered). Once started it is the keyed singleton
    /// <see cref="PostgresResourceManager"/> (and <see cref="IResourceManager"/>) under <paramref name="name"/>:
    /// <c>[FromKeyedServices("orders")] PostgresResourceManager orders</c>. The data source is not disposed by TwoPC.
    /// </summary>
    /// <param name="builder">The coordinator's builder.</param>
    /// <param name="name">The unique, stable name (the key in the container and in the log).</param>
    /// <param name="dataSource">Gives the data source, for example <c>sp => sp.GetRequiredService&lt;NpgsqlDataSource&gt;()</c>.</param>
    /// <param name="configure">Settings of the resource manager, applied to the named options <paramref name="name"/>
    /// (which can also be bound from configuration: <c>services.Configure&lt;PostgresResourceManagerOptions&gt;(name, section)</c>).</param>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("ApiDesign", "RS0026:Do not add multiple public overloads with optional parameters", Justification = "The overloads differ in the type of their required source parameter (connection string, data source, factory), so a call is never ambiguous.")]
    public static TwoPhaseCommitBuilder AddPostgres(this TwoPhaseCommitBuilder builder, string name, Func<IServiceProvider, NpgsqlDataSource> dataSource, Action<PostgresResourceManagerOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(dataSource);
        var options = builder.Services.AddOptions<PostgresResourceManagerOptions>(name);
        if (configure is not null)
        {
            options.Configure(configure);
        }

        return builder.AddResourceManager(name, (sp, ct) => PostgresResourceManager.CreateAsync(
            name,
            dataSource(sp),
            sp.GetRequiredService<IOptionsMonitor<PostgresResourceManagerOptions>>().Get(name),
            sp.GetService<ILoggerFactory>(),
            sp.GetService<IMeterFactory>(),
            sp.GetService<TimeProvider>(),
            ct));
    }
}
