using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using TwoPC.Participants;

namespace TwoPC.Hosting;

/// <summary>
/// Registers the resource managers an embedded coordinator recovers and enlists. A resource manager added with a name
/// is a keyed singleton under that name, both as its own type and as <see cref="IResourceManager"/>
/// (<c>[FromKeyedServices("orders")] PostgresResourceManager orders</c>); every one added with a type is also the
/// unkeyed singleton of that type while it is the only one of its type — with two of one type, resolving the unkeyed
/// type throws and names the keys to use instead. Names are unique: two resource managers with one name fail the start.
/// </summary>
public sealed class TwoPhaseCommitBuilder
{
    internal TwoPhaseCommitBuilder(IServiceCollection services) => Services = services;

    /// <summary>The application's services.</summary>
    public IServiceCollection Services { get; }

    /// <summary>
    /// Registers a resource manager created at host start (before recovery runs), for example
    /// <c>(sp, ct) => PostgresResourceManager.CreateAsync("orders", sp.GetRequiredService&lt;NpgsqlDataSource&gt;(), cancellationToken: ct)</c>.
    /// Use the same, stable name across restarts so recovery finds the branches it logged. The instance is the unkeyed
    /// <typeparamref name="TResourceManager"/> singleton (while it is the only one of that type); prefer the overload with a
    /// name, which also makes it a keyed service.
    /// </summary>
    public TwoPhaseCommitBuilder AddResourceManager<TResourceManager>(Func<IServiceProvider, CancellationToken, Task<TResourceManager>> create)
        where TResourceManager : class, IResourceManager
    {
        ArgumentNullException.ThrowIfNull(create);
        AddTyped(new ResourceManagerRegistration(typeof(TResourceManager), null, async (sp, ct) => await create(sp, ct).ConfigureAwait(false)));
        return this;
    }

    /// <summary>
    /// Registers a resource manager called <paramref name="name"/>, created at host start (before recovery runs) by
    /// <paramref name="create"/>, which must give it exactly that name. Once the host has started it is the keyed singleton
    /// <typeparamref name="TResourceManager"/> and <see cref="IResourceManager"/> under <paramref name="name"/>
    /// (<c>sp.GetRequiredKeyedService&lt;TResourceManager&gt;(name)</c>), and the unkeyed <typeparamref name="TResourceManager"/>
    /// while it is the only one of that type. Participant packages build on this (<c>AddPostgres</c>, <c>AddRabbitMq</c>).
    /// </summary>
    /// <param name="name">The resource manager's unique, stable name: its key in the container and in the log.</param>
    /// <param name="create">Creates it; the second argument cancels the creation when the start is abandoned.</param>
    public TwoPhaseCommitBuilder AddResourceManager<TResourceManager>(string name, Func<IServiceProvider, CancellationToken, Task<TResourceManager>> create)
        where TResourceManager : class, IResourceManager
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(create);
        var registration = AddTyped(new ResourceManagerRegistration(typeof(TResourceManager), name, async (sp, ct) =>
        {
            var rm = await create(sp, ct).ConfigureAwait(false);
            if (!string.Equals(rm.Name, name, StringComparison.Ordinal))
            {
                throw new InvalidOperationException(
                    $"The resource manager registered as '{name}' was created with the name '{rm.Name}'; the key and the name must be the same.");
            }

            return rm;
        }));
        Services.AddKeyedSingleton<TResourceManager>(name, (sp, _) => (TResourceManager)sp.GetRequiredService<TwoPhaseCommitHostedService>().ResourceManagerFor(registration));
        Services.AddKeyedSingleton<IResourceManager>(name, (sp, _) => sp.GetRequiredService<TwoPhaseCommitHostedService>().ResourceManagerFor(registration));
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
        Services.AddSingleton(new ResourceManagerRegistration(resourceManager.GetType(), resourceManager.Name, (_, _) => Task.FromResult(resourceManager)));
        return this;
    }

    private ResourceManagerRegistration AddTyped(ResourceManagerRegistration registration)
    {
        Services.AddSingleton(registration);

        // The typed instance is available once the host has started (the hosted service created it). One factory per
        // type: it answers while there is exactly one registration of the type, and otherwise says which keys to use.
        Services.TryAdd(ServiceDescriptor.Singleton(registration.Type, sp => sp.GetRequiredService<TwoPhaseCommitHostedService>().SingleResourceManagerOf(registration.Type)));
        return registration;
    }
}

/// <summary>A resolver for resource managers a logged decision or a forced action names but nobody registered.</summary>
internal sealed record ResourceManagerResolverRegistration(Func<IServiceProvider, string, IResourceManager?> Resolve);

/// <summary>How to create one resource manager at host start; <see cref="Name"/> is known before it is created when it was registered by name.</summary>
internal sealed record ResourceManagerRegistration(Type Type, string? Name, Func<IServiceProvider, CancellationToken, Task<IResourceManager>> Create);
