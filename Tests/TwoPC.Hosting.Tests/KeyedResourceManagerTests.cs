using System.Diagnostics.Metrics;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using TwoPC.Participants;
using TwoPC.Participants.PostgreSql;
using TwoPC.Participants.RabbitMq;
using TwoPC.Protocol;
using TwoPC.Testing;

namespace TwoPC.Hosting.Tests;

/// <summary>
/// Issue 15, item 7: resource managers registered by name (AddPostgres, AddRabbitMq, AddResourceManager(name, ...)) are
/// keyed services, pick up the container's logging and metrics, and names are unique. No server is needed: a
/// PostgreSQL resource manager whose server cannot be reached is still created (it checks on first use).
/// </summary>
public sealed class KeyedResourceManagerTests : IDisposable
{
    // Nothing listens on port 1: connections are refused at once.
    private const string Unreachable = "Host=127.0.0.1;Port=1;Username=u;Password=p;Timeout=2";
    private readonly DirectoryInfo _log = Directory.CreateTempSubdirectory("twopc-keyed-");

    public void Dispose() => _log.Delete(recursive: true);

    [Fact]
    public async Task Two_databases_and_a_broker_are_resolved_by_their_names()
    {
        using var host = Build(twoPc => twoPc
            .AddPostgres("orders", Unreachable)
            .AddPostgres("payments", Unreachable, o => o.BoundLockWaitsByDeadline = false)
            .AddRabbitMq("events", new Uri("amqp://guest:guest@127.0.0.1:1/")),
            services => services.AddSingleton<Checkout>());
        await host.StartAsync();

        var orders = host.Services.GetRequiredKeyedService<PostgresResourceManager>("orders");
        var payments = host.Services.GetRequiredKeyedService<PostgresResourceManager>("payments");
        Assert.Equal("orders", orders.Name);
        Assert.Equal("payments", payments.Name);
        Assert.Null(orders.Options.BoundLockWaitsByDeadline);
        Assert.False(payments.Options.BoundLockWaitsByDeadline);
        Assert.Same(orders, host.Services.GetRequiredKeyedService<IResourceManager>("orders"));
        Assert.Equal("events", host.Services.GetRequiredKeyedService<RabbitMqResourceManager>("events").Name);
        // The only one of its type is also the unkeyed singleton.
        Assert.Same(host.Services.GetRequiredKeyedService<RabbitMqResourceManager>("events"), host.Services.GetRequiredService<RabbitMqResourceManager>());
        // [FromKeyedServices] in a constructor.
        var checkout = host.Services.GetRequiredService<Checkout>();
        Assert.Same(orders, checkout.Orders);
        Assert.Same(payments, checkout.Payments);
        Assert.Equal(["events", "orders", "payments"], host.Services.GetRequiredService<TransactionCoordinator>().ResourceManagers.Select(r => r.Name).Order());
        await host.StopAsync();
    }

    [Fact]
    public async Task The_unkeyed_type_with_two_of_it_is_an_error_naming_the_keys()
    {
        using var host = Build(twoPc => twoPc.AddPostgres("orders", Unreachable).AddPostgres("payments", Unreachable));
        await host.StartAsync();
        var error = Assert.Throws<InvalidOperationException>(() => host.Services.GetRequiredService<PostgresResourceManager>());
        Assert.Contains("'orders', 'payments'", error.Message, StringComparison.Ordinal);
        Assert.Contains("GetRequiredKeyedService<PostgresResourceManager>", error.Message, StringComparison.Ordinal);
        await host.StopAsync();
    }

    [Fact]
    public async Task Two_resource_managers_with_one_name_fail_the_start()
    {
        using var host = Build(twoPc => twoPc.AddPostgres("orders", Unreachable).AddRabbitMq("orders", new Uri("amqp://127.0.0.1:1/")));
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => host.StartAsync());
        Assert.Contains("names must be unique", error.Message, StringComparison.Ordinal);
        Assert.Contains("'orders' (PostgresResourceManager, RabbitMqResourceManager)", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_factory_that_names_its_resource_manager_differently_fails_the_start()
    {
        using var host = Build(twoPc => twoPc.AddResourceManager("orders", (_, _) => Task.FromResult(new ScriptedResourceManager("order"))));
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => host.StartAsync());
        Assert.Contains("registered as 'orders' was created with the name 'order'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_named_resource_manager_is_not_resolvable_before_the_host_starts()
    {
        using var host = Build(twoPc => twoPc.AddResourceManager("a", (_, _) => Task.FromResult(new ScriptedResourceManager("a"))));
        var error = Assert.Throws<InvalidOperationException>(() => host.Services.GetRequiredKeyedService<ScriptedResourceManager>("a"));
        Assert.Contains("resolve it after startup", error.Message, StringComparison.Ordinal);
        await host.StartAsync();
        Assert.Equal("a", host.Services.GetRequiredService<ScriptedResourceManager>().Name);
        await host.StopAsync();
    }

    [Fact]
    public async Task The_container_logger_and_meter_factories_are_used()
    {
        var logs = new ListLoggerProvider();
        using var listener = new MeterListener();
        var instruments = new List<(string Name, object? Scope)>();
        listener.InstrumentPublished = (instrument, _) =>
        {
            lock (instruments)
            {
                instruments.Add((instrument.Name, instrument.Meter.Scope));
            }
        };
        listener.Start();

        using var host = Build(twoPc => twoPc.AddPostgres("orders", Unreachable), services => services.AddSingleton<ILoggerProvider>(logs));
        await host.StartAsync();

        // The server cannot be reached: the resource manager says so through the application's logging.
        Assert.Contains(logs.Messages, m => m.Category.StartsWith("TwoPC.Participants.PostgreSql", StringComparison.Ordinal) && m.Message.Contains("orders", StringComparison.Ordinal));
        // Its instruments come from the container's IMeterFactory (the meter's scope), not from a global meter.
        var meterFactory = host.Services.GetRequiredService<IMeterFactory>();
        lock (instruments)
        {
            Assert.Contains(("twopc.postgres.outcome_lookups", (object?)meterFactory), instruments);
        }

        await host.StopAsync();
    }

    [Fact]
    public async Task The_container_disposes_the_data_source_it_built_but_not_one_it_was_given()
    {
        await using var given = NpgsqlDataSource.Create(Unreachable);
        var disposable = new DisposableResourceManager("custom");
        NpgsqlDataSource owned;
        using (var host = Build(twoPc => twoPc
            .AddPostgres("orders", Unreachable)
            .AddPostgres("payments", _ => given)
            .AddResourceManager("custom", (_, _) => Task.FromResult(disposable))))
        {
            await host.StartAsync();
            owned = host.Services.GetRequiredKeyedService<NpgsqlDataSource>("orders");
            Assert.Same(owned, host.Services.GetRequiredKeyedService<PostgresResourceManager>("orders").DataSource);
            await host.StopAsync();
            Assert.False(disposable.Disposed);
        }

        Assert.True(disposable.Disposed);
        await Assert.ThrowsAsync<ObjectDisposedException>(async () => await owned.OpenConnectionAsync());
        // The given one is still usable: opening it reaches for the (absent) server.
        await Assert.ThrowsAsync<NpgsqlException>(async () => await given.OpenConnectionAsync());
    }

    private IHost Build(Action<TwoPhaseCommitBuilder> configure, Action<IServiceCollection>? services = null)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["TwoPC:NodeId"] = "keyed-1", ["TwoPC:LogDirectory"] = _log.FullName });
        builder.Logging.SetMinimumLevel(LogLevel.Debug);
        services?.Invoke(builder.Services);
        configure(builder.Services.AddTwoPhaseCommit(builder.Configuration.GetSection(TwoPCOptions.SectionName)));
        return builder.Build();
    }

    private sealed class Checkout([FromKeyedServices("orders")] PostgresResourceManager orders, [FromKeyedServices("payments")] PostgresResourceManager payments)
    {
        public PostgresResourceManager Orders => orders;

        public PostgresResourceManager Payments => payments;
    }

    private sealed class DisposableResourceManager(string name) : IResourceManager, IAsyncDisposable
    {
        private readonly ScriptedResourceManager _inner = new(name);

        public bool Disposed { get; private set; }

        public string Name => _inner.Name;

        public ValueTask<BranchOutcome> CommitAsync(TwoPC.Transactions.Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken) => _inner.CommitAsync(xid, recoveryData, cancellationToken);

        public ValueTask<BranchOutcome> RollbackAsync(TwoPC.Transactions.Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken) => _inner.RollbackAsync(xid, recoveryData, cancellationToken);

        public ValueTask<IReadOnlyCollection<InDoubtBranch>> RecoverAsync(CancellationToken cancellationToken) => _inner.RecoverAsync(cancellationToken);

        public ValueTask ForgetAsync(TwoPC.Transactions.Xid xid, CancellationToken cancellationToken) => _inner.ForgetAsync(xid, cancellationToken);

        public ValueTask DisposeAsync()
        {
            Disposed = true;
            return ValueTask.CompletedTask;
        }
    }

    private sealed class ListLoggerProvider : ILoggerProvider
    {
        private readonly List<(string Category, string Message)> _messages = [];

        public IReadOnlyList<(string Category, string Message)> Messages
        {
            get
            {
                lock (_messages)
                {
                    return [.. _messages];
                }
            }
        }

        public ILogger CreateLogger(string categoryName) => new ListLogger(this, categoryName);

        public void Dispose()
        {
        }

        private sealed class ListLogger(ListLoggerProvider provider, string category) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                lock (provider._messages)
                {
                    provider._messages.Add((category, formatter(state, exception)));
                }
            }
        }
    }
}
