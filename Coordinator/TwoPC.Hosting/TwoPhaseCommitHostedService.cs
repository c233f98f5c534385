using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using TwoPC.Durability;
using TwoPC.Durability.PostgreSql;
using TwoPC.Participants;
using TwoPC.Protocol;
using TwoPC.Wal;

namespace TwoPC.Hosting;

/// <summary>
/// Owns the embedded coordinator's lifetime. Recovery runs in <see cref="StartingAsync"/>, so it is done
/// before the host reports started (until then <see cref="TransactionCoordinator.Begin"/> refuses new
/// transactions); <see cref="StopAsync"/> stops new transactions and lets phase 2 in flight finish within
/// the host's shutdown timeout.
/// </summary>
internal sealed class TwoPhaseCommitHostedService : IHostedLifecycleService, IAsyncDisposable
{
    private readonly IServiceProvider _services;
    private readonly IEnumerable<ResourceManagerRegistration> _registrations;
    private readonly ResourceManagerResolverRegistration[] _resolvers;
    private readonly ConcurrentDictionary<ResourceManagerRegistration, IResourceManager> _created = new();

    /// <summary>Creates the service; the coordinator itself is created here and started with the host.</summary>
    public TwoPhaseCommitHostedService(IServiceProvider services, IOptions<TwoPCOptions> options, ILoggerFactory loggerFactory, IMeterFactory? meterFactory = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(options);
        _services = services;
        _registrations = (IEnumerable<ResourceManagerRegistration>?)services.GetService(typeof(IEnumerable<ResourceManagerRegistration>)) ?? [];
        _resolvers = [.. (IEnumerable<ResourceManagerResolverRegistration>?)services.GetService(typeof(IEnumerable<ResourceManagerResolverRegistration>)) ?? []];
        var settings = options.Value;
        // The log registered by AddTwoPhaseCommit (replaceable, e.g. by a shared log); the file log when built by hand.
        var log = (ITransactionLog?)services.GetService(typeof(ITransactionLog)) ?? CreateLog(settings, loggerFactory, meterFactory, (TimeProvider?)services.GetService(typeof(TimeProvider)));
        Coordinator = new TransactionCoordinator(settings, log, null, loggerFactory, meterFactory, (TimeProvider?)services.GetService(typeof(TimeProvider)));
    }

    /// <summary>The embedded coordinator (refuses transactions until the host has started).</summary>
    public TransactionCoordinator Coordinator { get; }

    /// <summary>Creates the resource managers, registers them, installs the resolvers, opens the log and recovers.</summary>
    public async Task StartingAsync(CancellationToken cancellationToken)
    {
        if (_resolvers.Length > 0)
        {
            Coordinator.ResourceManagerResolver = name =>
            {
                foreach (var resolver in _resolvers)
                {
                    if (resolver.Resolve(_services, name) is { } rm)
                    {
                        return rm;
                    }
                }

                return null;
            };
        }

        ThrowOnDuplicateNames(_registrations);
        foreach (var registration in _registrations)
        {
            var rm = await registration.Create(_services, cancellationToken).ConfigureAwait(false);
            _created[registration] = rm;
            Coordinator.RegisterResourceManager(rm);
        }

        await Coordinator.StartAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <inheritdoc />
    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <inheritdoc />
    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Stops new transactions and waits (until the shutdown timeout) for commits in flight.</summary>
    public Task StopAsync(CancellationToken cancellationToken) => Coordinator.StopAsync(cancellationToken);

    /// <inheritdoc />
    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await Coordinator.DisposeAsync().ConfigureAwait(false);
        foreach (var rm in _created.Values)
        {
            switch (rm)
            {
                case IAsyncDisposable asyncDisposable:
                    await asyncDisposable.DisposeAsync().ConfigureAwait(false);
                    break;
                case IDisposable disposable:
                    disposable.Dispose();
                    break;
            }
        }
    }

    /// <summary>
    /// The configured <see cref="ITransactionLog"/>: the file write-ahead log in <see cref="TwoPCOptions.LogDirectory"/>
    /// (default), or the shared PostgreSQL log (<c>TwoPC:Log:Kind = PostgreSql</c>).
    /// </summary>
    internal static ITransactionLog CreateLog(TwoPCOptions settings, ILoggerFactory loggerFactory, IMeterFactory? meterFactory, TimeProvider? timeProvider) =>
        settings.Log.Kind == TwoPCLogKind.PostgreSql
            ? new PostgreSqlTransactionLog(
                new PostgreSqlTransactionLogOptions
                {
                    ConnectionString = settings.Log.ConnectionString,
                    Schema = settings.Log.Schema,
                    LeaseDuration = settings.Log.LeaseDuration,
                    RenewInterval = settings.Log.RenewInterval,
                },
                loggerFactory,
                meterFactory,
                timeProvider)
            : new FileTransactionLog(
                new FileTransactionLogOptions { Directory = settings.LogDirectory!, SegmentSize = settings.SegmentSize },
                loggerFactory.CreateLogger<FileTransactionLog>(),
                meterFactory);

    /// <summary>Two registrations with one name fail the start before any resource manager is created.</summary>
    private static void ThrowOnDuplicateNames(IEnumerable<ResourceManagerRegistration> registrations)
    {
        var duplicates = registrations
            .Where(r => r.Name is not null)
            .GroupBy(r => r.Name!, StringComparer.Ordinal)
            .Where(g => g.Count() > 1)
            .Select(g => $"'{g.Key}' ({string.Join(", ", g.Select(r => r.Type.Name))})")
            .ToList();
        if (duplicates.Count > 0)
        {
            throw new InvalidOperationException(
                $"Resource manager names must be unique (each is a key in the container and in the transaction log); registered more than once: {string.Join("; ", duplicates)}.");
        }
    }

    /// <summary>The unkeyed typed resource manager: there must be exactly one registration of <paramref name="type"/>.</summary>
    internal IResourceManager SingleResourceManagerOf(Type type)
    {
        var ofType = _registrations.Where(r => r.Type == type).ToList();
        if (ofType.Count == 1)
        {
            return ResourceManagerFor(ofType[0]);
        }

        var names = string.Join(", ", ofType.Select(r => r.Name is null ? "(unnamed)" : $"'{r.Name}'"));
        throw new InvalidOperationException(
            $"{ofType.Count} {type.Name} resource managers are registered ({names}): resolve one by its name, " +
            $"[FromKeyedServices(\"name\")] {type.Name} or GetRequiredKeyedService<{type.Name}>(\"name\"), registering each with a name.");
    }

    internal IResourceManager ResourceManagerFor(ResourceManagerRegistration registration) =>
        _created.TryGetValue(registration, out var rm)
            ? rm
            : throw new InvalidOperationException($"The {registration.Type.Name} resource manager is created when the host starts; resolve it after startup.");
}
