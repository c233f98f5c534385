using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using Wolverine;
using Wolverine.Postgresql;
using Wolverine.RabbitMQ;
using Wolverine.RDBMS;
using Wolverine.Runtime;

namespace TwoPC.Benchmarks.Wolverine;

/// <summary>The message the Wolverine peer publishes (System.Text.Json, like the other variants' bodies).</summary>
public sealed record PublishBenchMessage(int Id, long StartedAt);

/// <summary>
/// The peer: a Wolverine host with PostgreSQL message persistence (its own schema in the benchmark's
/// database) and the RabbitMQ transport, publishing <see cref="PublishBenchMessage"/> to a durable
/// exchange through the durable outbox. Each operation follows Wolverine's pattern for an outbox on a
/// raw ADO.NET transaction: a <see cref="MessageContext"/> enlisted with a
/// <see cref="DatabaseEnvelopeTransaction"/> on the caller's <see cref="NpgsqlTransaction"/>, so the
/// outgoing envelope is inserted in the same transaction as the business UPDATE; after COMMIT,
/// <see cref="MessageContext.FlushOutgoingMessagesAsync"/> hands the envelope to the durable sending
/// agent, which publishes it in the background and then deletes it from the outbox table.
/// </summary>
public sealed class WolverineOutbox : IAsyncDisposable
{
    private readonly IHost _host;
    private readonly IWolverineRuntime _runtime;
    private readonly IMessageDatabase _database;

    private WolverineOutbox(IHost host)
    {
        _host = host;
        _runtime = (IWolverineRuntime)host.Services.GetService(typeof(IWolverineRuntime))!;
        _database = _runtime.Storage as IMessageDatabase
            ?? throw new InvalidOperationException($"Wolverine's message store is {_runtime.Storage.GetType().Name}, not a database.");
    }

    /// <summary>Whether the RabbitMQ channels were created with publisher confirms (Wolverine's default: no).</summary>
    public bool PublisherConfirms { get; private init; }

    /// <summary>Starts the host in solo durability mode; the exchange must already exist (no auto-provisioning).</summary>
    public static async Task<WolverineOutbox> StartAsync(string postgresConnectionString, Uri amqpUri, string exchange, string routingKey, string schema, bool publisherConfirms)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders();
        builder.Logging.AddConsole().SetMinimumLevel(LogLevel.Warning);
        builder.UseWolverine(opts =>
        {
            opts.ApplicationAssembly = typeof(WolverineOutbox).Assembly;
            opts.Durability.Mode = DurabilityMode.Solo;
            opts.PersistMessagesWithPostgresql(postgresConnectionString, schema);
            var rabbit = opts.UseRabbitMq(amqpUri);
            if (publisherConfirms)
            {
                rabbit.ConfigureChannelCreation(o =>
                {
                    o.PublisherConfirmationsEnabled = true;
                    o.PublisherConfirmationTrackingEnabled = true;
                });
            }

            opts.PublishMessage<PublishBenchMessage>().ToRabbitRoutingKey(exchange, routingKey).UseDurableOutbox();
        });
        var host = builder.Build();
        await host.StartAsync();
        return new WolverineOutbox(host) { PublisherConfirms = publisherConfirms };
    }

    /// <summary>
    /// One operation: BEGIN, enlist the outbox, run <paramref name="work"/> (the UPDATE), send the message
    /// (INSERT into the outgoing table, same transaction), COMMIT, flush to the sending agent.
    /// </summary>
    public async Task ExecuteAsync(NpgsqlDataSource dataSource, PublishBenchMessage message, Func<NpgsqlConnection, NpgsqlTransaction, Task> work)
    {
        var context = new MessageContext(_runtime);
        await using var connection = await dataSource.OpenConnectionAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        await context.EnlistInOutboxAsync(new DatabaseEnvelopeTransaction(_database, transaction));
        await work(connection, transaction);
        await context.SendAsync(message);
        await transaction.CommitAsync();
        await context.FlushOutgoingMessagesAsync();
    }

    /// <summary>Rows still in Wolverine's outgoing table (persisted, not yet known sent).</summary>
    public async Task<long> CountOutgoingAsync(NpgsqlDataSource dataSource, string schema)
    {
        await using var command = dataSource.CreateCommand($"SELECT count(*) FROM {schema}.wolverine_outgoing_envelopes");
        return (long)(await command.ExecuteScalarAsync())!;
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _host.StopAsync();
        _host.Dispose();
    }
}
