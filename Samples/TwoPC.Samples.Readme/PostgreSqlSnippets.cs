using Dapper;
using Npgsql;
using TwoPC.Participants.PostgreSql;
using TwoPC.Protocol;

namespace TwoPC.Samples.Readme;

/// <summary>README "PostgreSQL" and the TwoPC.Participants.PostgreSql package README.</summary>
public static class PostgreSqlSnippets
{
    /// <summary>README.md, section "PostgreSQL".</summary>
    public static async Task EnlistAsync(string ordersConnectionString, TransactionCoordinator coordinator, GlobalTransaction tx, Guid orderId)
    {
        #region readme
        // using Dapper; using Npgsql; using TwoPC.Participants.PostgreSql;
        await using var ordersSource = NpgsqlDataSource.Create(ordersConnectionString);
        var ordersDb = await PostgresResourceManager.CreateAsync("orders", ordersSource);   // checks max_prepared_transactions > 0 (now, or at first use if the server is down)
        coordinator.RegisterResourceManager(ordersDb);   // or pass it to the coordinator's constructor
        // in a transaction:
        var orders = await ordersDb.EnlistAsync(tx);
        await orders.Connection.ExecuteAsync("INSERT INTO orders (id, sku, quantity) VALUES (@orderId, 'mug', 1)", new { orderId }, orders.Transaction);
        #endregion
    }

    /// <summary>Participants/TwoPC.Participants.PostgreSql/README.md.</summary>
    public static async Task PackageAsync(GlobalTransaction tx)
    {
        #region package
        // using Npgsql; using TwoPC.Participants.PostgreSql;
        await using var ordersSource = NpgsqlDataSource.Create("Host=localhost;Database=orders;Username=app");
        var ordersDb = await PostgresResourceManager.CreateAsync("orders", ordersSource);
        // register ordersDb with the coordinator (TwoPC.Core / TwoPC.Hosting), then in a transaction:
        var orders = await ordersDb.EnlistAsync(tx);     // an open connection and its transaction
        await using var insert = new NpgsqlCommand("INSERT INTO orders (id) VALUES (1)", orders.Connection, orders.Transaction);
        await insert.ExecuteNonQueryAsync();
        #endregion
    }
}
