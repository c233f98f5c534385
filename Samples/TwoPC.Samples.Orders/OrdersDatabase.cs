using Dapper;
using Npgsql;

namespace TwoPC.Samples.Orders;

/// <summary>The order service's schema and seed stock.</summary>
internal static class OrdersDatabase
{
    /// <summary>The stock a fresh database starts with (sku, units).</summary>
    public static readonly IReadOnlyList<(string Sku, int Quantity)> SeedStock =
    [
        ("book", 200), ("mug", 150), ("pen", 300), ("lamp", 2), ("chair", 20),
    ];

    private const string Schema = """
        SELECT pg_advisory_xact_lock(7215002);
        CREATE TABLE IF NOT EXISTS stock (
            sku text PRIMARY KEY,
            quantity int NOT NULL CHECK (quantity >= 0));
        CREATE TABLE IF NOT EXISTS orders (
            order_id text PRIMARY KEY,
            customer_id text NOT NULL,
            sku text NOT NULL REFERENCES stock,
            quantity int NOT NULL CHECK (quantity > 0),
            amount numeric(12,2) NOT NULL CHECK (amount > 0),
            created_at timestamptz NOT NULL DEFAULT now());
        """;

    /// <summary>Creates the tables if missing and seeds the stock of an empty database.</summary>
    public static async Task CreateSchemaAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await connection.ExecuteAsync(new CommandDefinition(Schema, transaction: transaction, cancellationToken: cancellationToken)).ConfigureAwait(false);
        if (await connection.ExecuteScalarAsync<long>(new CommandDefinition("SELECT count(*) FROM stock", transaction: transaction, cancellationToken: cancellationToken)).ConfigureAwait(false) == 0)
        {
            await connection.ExecuteAsync(new CommandDefinition(
                "INSERT INTO stock (sku, quantity) VALUES (@Sku, @Quantity)",
                SeedStock.Select(s => new { s.Sku, s.Quantity }),
                transaction,
                cancellationToken: cancellationToken)).ConfigureAwait(false);
        }

        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
    }
}
