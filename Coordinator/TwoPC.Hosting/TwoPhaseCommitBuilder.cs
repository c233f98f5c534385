using Microsoft.Extensions.DependencyInjection;
using TwoPC.Participants;

namespace TwoPC.Hosting;

/// <summary>Registers the resource managers an embedded coordinator recovers and enlists.</summary>
public sealed class TwoPhaseCommitBuilder
{
    internal TwoPhaseCommitBuilder(IServiceCollection services) => Services = services;

    /// <summary>The application's services.</summary>
    public IServiceCollection Services { get; }

    /// <summary>
    /// Registers a resource manager created at host start (before recovery runs), for example
    /// <c>(sp, ct) => PostgresResourceManager.CreateAsync("orders", sp.GetRequiredService&lt;NpgsqlDataSource&gt;(), cancellationToken: ct)</c>.
    /// Use the same, stable name across restarts so recovery finds the branches it logged.
    /// </summary>
    public TwoPhaseCommitBuilder AddResourceManager<TResourceManager>(Func<IServiceProvider, CancellationToken, Task<TResourceManager>> create)
        where TResourceManager : class, IResourceManager
    {
        ArgumentNullException.ThrowIfNull(create);
        var registration = new ResourceManagerRegistration(typeof(TResourceManager), async (sp, ct) => await create(sp, ct).ConfigureAwait(false));
        Services.AddSingleton(registration);

        // The typed instance is available once the host has started (the hosted service created it).
        Services.AddSingleton(sp => (TResourceManager)sp.GetRequiredService<TwoPhaseCommitHostedService>().ResourceManagerFor(registration));
        return this;
    }

    /// <summary>Registers an already created resource manager (a custom participant).</summary>
    public TwoPhaseCommitBuilder AddResourceManager(IResourceManager resourceManager)
    {
        ArgumentNullException.ThrowIfNull(resourceManager);
        Services.AddSingleton(new ResourceManagerRegistration(resourceManager.GetType(), (_, _) => Task.FromResult(resourceManager)));
        return this;
    }
}

/// <summary>How to create one resource manager at host start.</summary>
internal sealed record ResourceManagerRegistration(Type Type, Func<IServiceProvider, CancellationToken, Task<IResourceManager>> Create);
