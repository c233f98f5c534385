using Microsoft.EntityFrameworkCore;
using Npgsql;
using TwoPC.Protocol;
using TwoPC.Samples.Readme;
using static TwoPC.Samples.Readme.EntityFrameworkSnippets;
using TwoPC.TestServers;
using TwoPC.Transactions;
using TwoPC.Wal;

namespace TwoPC.Participants.PostgreSql.EntityFrameworkCore.Tests;

/// <summary>A private PostgreSQL server for the EF Core tests; each test creates its own two databases.</summary>
public sealed class PostgresFixture : IAsyncLifetime
{
    public PostgresServer Server { get; private set; } = null!;

    public async Task InitializeAsync() => Server = await PostgresServer.StartAsync(new PostgresServerOptions { Fsync = false });

    public async Task DisposeAsync() => await Server.DisposeAsync();
}

/// <summary>Issue 15, item 12: two DbContexts on two databases, one global transaction.</summary>
public sealed class EntityFrameworkEnlistmentTests(PostgresFixture fixture) : IClassFixture<PostgresFixture>, IAsyncLifetime
{
    private readonly DirectoryInfo _log = Directory.CreateTempSubdirectory("twopc-ef-log-");
    private readonly List<NpgsqlDataSource> _sources = [];
    private TransactionCoordinator _coordinator = null!;
    private PostgresResourceManager _orders = null!;
    private PostgresResourceManager _payments = null!;

    public async Task InitializeAsync()
    {
        _orders = await CreateDatabaseAsync("orders");
        _payments = await CreateDatabaseAsync("payments");
        _coordinator = new TransactionCoordinator(
            new TransactionCoordinatorOptions { NodeId = "ef-tests" },
            new FileTransactionLog(new FileTransactionLogOptions { Directory = _log.FullName }),
            [_orders, _payments]);
        await _coordinator.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await _coordinator.DisposeAsync();
        _orders.Dispose();
        _payments.Dispose();
        foreach (var source in _sources)
        {
            await source.DisposeAsync();
        }

        _log.Delete(recursive: true);
    }

    [Fact]
    public async Task Two_contexts_on_two_databases_commit_atomically()
    {
        var (orders, payments) = (_orders, _payments);

        // The README's "Entity Framework Core" example (Samples/TwoPC.Samples.Readme, region EntityFrameworkSnippets.cs#readme).
        await using var tx = _coordinator.Begin(TimeSpan.FromSeconds(30));
        var (order, _) = await EntityFrameworkSnippets.WriteInTwoContextsAsync(tx, orders, payments);

        // (Two rows each: a SaveChanges of more than one statement would begin a transaction of its own if the context were not enlisted.)
        // Disposing the contexts left the branches' connections open and their work uncommitted.
        Assert.Equal(System.Data.ConnectionState.Open, order.Connection.State);
        Assert.Equal(0, await CountAsync(_orders, "o-1"));

        var outcome = await tx.CommitAsync();   // PREPARE TRANSACTION in both databases, then COMMIT PREPARED

        Assert.Equal(OutcomeKind.Committed, outcome.Kind);
        Assert.Equal(1, await CountAsync(_orders, "o-1"));
        Assert.Equal(1, await CountAsync(_orders, "o-1b"));
        Assert.Equal(1, await CountAsync(_payments, "p-1"));
        Assert.Equal(1, await CountAsync(_payments, "p-1b"));
        Assert.Equal(0, await PreparedAsync(_orders) + await PreparedAsync(_payments));
    }

    [Fact]
    public async Task A_constraint_violated_at_prepare_rolls_both_contexts_back()
    {
        // payments.entries.id is unique and checked at commit (deferred): the duplicate passes SaveChanges and fails PREPARE.
        await using (var db = await ContextOutsideAsync(_payments))
        {
            db.Entries.Add(new Entry { Id = "dup", Amount = 1 });
            await db.SaveChangesAsync();
        }

        await using var tx = _coordinator.Begin(TimeSpan.FromSeconds(30));
        await using (var db = await (await _orders.EnlistAsync(tx)).CreateDbContextAsync<ShopContext>(options => new(options)))
        {
            db.Entries.Add(new Entry { Id = "o-2", Amount = 5 });
            await db.SaveChangesAsync();
        }

        var payment = await _payments.EnlistAsync(tx);
        await payment.Connection.ExecuteNonQueryAsync("SET CONSTRAINTS ALL DEFERRED", payment.Transaction);
        await using (var db = await payment.CreateDbContextAsync<ShopContext>(options => new(options)))
        {
            db.Entries.Add(new Entry { Id = "dup", Amount = 2 });
            await db.SaveChangesAsync();
        }

        var outcome = await tx.CommitAsync();

        Assert.Equal(OutcomeKind.RolledBack, outcome.Kind);
        Assert.Equal(0, await CountAsync(_orders, "o-2"));
        Assert.Equal(1, await CountAsync(_payments, "dup"));
        Assert.Equal(0, await PreparedAsync(_orders) + await PreparedAsync(_payments));
    }

    [Fact]
    public async Task A_context_on_a_branch_cannot_begin_commit_or_roll_back_a_transaction()
    {
        await using var tx = _coordinator.Begin(TimeSpan.FromSeconds(30));
        var order = await _orders.EnlistAsync(tx);
        await using (var db = await order.CreateDbContextAsync<ShopContext>(options => new(options)))
        {
            db.Entries.Add(new Entry { Id = "o-3", Amount = 1 });
            await db.SaveChangesAsync();

            var commit = await Assert.ThrowsAsync<InvalidOperationException>(() => db.Database.CommitTransactionAsync());
            Assert.Contains("does not commit its transaction", commit.Message, StringComparison.Ordinal);
            Assert.Throws<InvalidOperationException>(() => { db.Database.RollbackTransaction(); });
            Assert.Throws<InvalidOperationException>(() => { using var nested = db.Database.BeginTransaction(); });
        }

        // Still uncommitted, and the global transaction commits it.
        Assert.Equal(0, await CountAsync(_orders, "o-3"));
        Assert.Equal(OutcomeKind.Committed, (await tx.CommitAsync()).Kind);
        Assert.Equal(1, await CountAsync(_orders, "o-3"));
    }

    [Fact]
    public async Task A_context_on_another_connection_is_not_enlisted()
    {
        await using var tx = _coordinator.Begin(TimeSpan.FromSeconds(30));
        var order = await _orders.EnlistAsync(tx);
        await using var db = new ShopContext(new DbContextOptionsBuilder<ShopContext>().UseNpgsql(_orders.DataSource).Options);
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => db.Database.EnlistAsync(order));
        Assert.Contains("not on the connection of branch", error.Message, StringComparison.Ordinal);
        await tx.RollbackAsync();
    }

    private async Task<PostgresResourceManager> CreateDatabaseAsync(string name)
    {
        var source = NpgsqlDataSource.Create(await fixture.Server.CreateDatabaseAsync());
        _sources.Add(source);
        await using (var command = source.CreateCommand(
            "CREATE TABLE entries (id text NOT NULL, amount int NOT NULL, CONSTRAINT entries_id UNIQUE (id) DEFERRABLE INITIALLY IMMEDIATE)"))
        {
            await command.ExecuteNonQueryAsync();
        }

        return await PostgresResourceManager.CreateAsync(name, source);
    }

    private static async Task<ShopContext> ContextOutsideAsync(PostgresResourceManager rm)
    {
        await Task.CompletedTask;
        return new ShopContext(new DbContextOptionsBuilder<ShopContext>().UseNpgsql(rm.DataSource).Options);
    }

    private static async Task<long> CountAsync(PostgresResourceManager rm, string id)
    {
        await using var command = rm.DataSource.CreateCommand("SELECT count(*) FROM entries WHERE id = $1");
        command.Parameters.Add(new NpgsqlParameter { Value = id });
        return (long)(await command.ExecuteScalarAsync())!;
    }

    private static async Task<long> PreparedAsync(PostgresResourceManager rm)
    {
        await using var command = rm.DataSource.CreateCommand("SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database()");
        return (long)(await command.ExecuteScalarAsync())!;
    }
}

internal static class ConnectionExtensions
{
    public static async Task ExecuteNonQueryAsync(this NpgsqlConnection connection, string sql, NpgsqlTransaction transaction)
    {
        await using var command = new NpgsqlCommand(sql, connection, transaction);
        await command.ExecuteNonQueryAsync();
    }
}
