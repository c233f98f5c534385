using Dapper;
using Npgsql;

namespace TwoPC.Samples.Payments;

/// <summary>The payment service's schema, its overdraft rule and its seed data.</summary>
internal static class PaymentsDatabase
{
    /// <summary>The wallets a fresh database starts with (customer, balance).</summary>
    public static readonly IReadOnlyList<(string CustomerId, decimal Balance)> SeedWallets =
    [
        ("alice", 5000.00m), ("bob", 25.00m), ("carol", 2500.00m), ("dave", 2000.00m), ("erin", 1500.00m),
        ("frank", 1000.00m), ("grace", 800.00m), ("heidi", 600.00m), ("ivan", 400.00m), ("judy", 200.00m),
    ];

    // Insufficient funds is a *deferred* constraint: the UPDATE that overdraws a wallet succeeds, and the check runs
    // when the transaction ends — for a branch of a global transaction that is PREPARE TRANSACTION, so the branch
    // votes No and PostgreSQL rolls it back. (A plain CHECK would fail the UPDATE itself, in the handler.)
    private const string Schema = """
        SELECT pg_advisory_xact_lock(7215001);
        CREATE TABLE IF NOT EXISTS wallets (
            customer_id text PRIMARY KEY,
            balance numeric(12,2) NOT NULL);
        CREATE TABLE IF NOT EXISTS payments (
            order_id text PRIMARY KEY,
            customer_id text NOT NULL REFERENCES wallets,
            amount numeric(12,2) NOT NULL CHECK (amount > 0),
            paid_at timestamptz NOT NULL DEFAULT now());
        CREATE OR REPLACE FUNCTION wallets_no_overdraft() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            v_balance numeric(12,2);
        BEGIN
            SELECT balance INTO v_balance FROM wallets WHERE customer_id = NEW.customer_id;
            IF v_balance < 0 THEN
                RAISE EXCEPTION 'insufficient funds: wallet % would be overdrawn to %', NEW.customer_id, v_balance
                    USING ERRCODE = 'check_violation';
            END IF;
            RETURN NULL;
        END $$;
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'wallets_no_overdraft' AND tgrelid = 'wallets'::regclass) THEN
                CREATE CONSTRAINT TRIGGER wallets_no_overdraft AFTER INSERT OR UPDATE OF balance ON wallets
                    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION wallets_no_overdraft();
            END IF;
        END $$;
        """;

    /// <summary>Creates the tables and the overdraft trigger if missing, and seeds the wallets of an empty database.</summary>
    public static async Task CreateSchemaAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await connection.ExecuteAsync(new CommandDefinition(Schema, transaction: transaction, cancellationToken: cancellationToken)).ConfigureAwait(false);
        if (await connection.ExecuteScalarAsync<long>(new CommandDefinition("SELECT count(*) FROM wallets", transaction: transaction, cancellationToken: cancellationToken)).ConfigureAwait(false) == 0)
        {
            await connection.ExecuteAsync(new CommandDefinition(
                "INSERT INTO wallets (customer_id, balance) VALUES (@CustomerId, @Balance)",
                SeedWallets.Select(w => new { w.CustomerId, w.Balance }),
                transaction,
                cancellationToken: cancellationToken)).ConfigureAwait(false);
        }

        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
    }
}
