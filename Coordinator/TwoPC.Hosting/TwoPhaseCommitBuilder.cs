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

    /// <summary>
    /// Supplies resource managers that are not registered when a logged commit decision (re-driven after a
    /// restart) or an operator's forced action names them (see <see cref="TwoPC.Protocol.TransactionCoordinator.ResourceManagerResolver"/>):
    /// return one called exactly <c>name</c> (it is registered and used), or <see langword="null"/> for an unknown name.
    /// Several resolvers are asked in the order they were added; the first non-null answer wins. Set before recovery runs.
    /// </summary>
    public TwoPhaseCommitBuilder ResolveResourceManagers(Func<IServiceProvider, string, IResourceManager?> resolve)
    {
        ArgumentNullException.ThrowIfNull(resolve);
        Services.AddSingleton(new ResourceManagerResolverRegistration(resolve));
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

/// <summary>A resolver for resource managers a logged decision or a forced action names but nobody registered.</summary>
internal sealed record ResourceManagerResolverRegistration(Func<IServiceProvider, string, IResourceManager?> Resolve);

/// <summary>How to create one resource manager at host start.</summary>
internal sealed record ResourceManagerRegistration(Type Type, Func<IServiceProvider, CancellationToken, Task<IResourceManager>> Create);
