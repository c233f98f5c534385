using Dapper;
using Npgsql;

namespace TwoPC.Verify;

/// <summary>
/// The bank: accounts spread over the databases (account <c>a</c> lives in database <c>a % n</c>), a transfer row in
/// both databases a transfer touches, and, in database 0, the consumed-message table — deliberately without a unique
/// constraint, so a message processed twice stays visible. Everything lives in the schema <c>twopc_verify</c>, which
/// the checker owns: it is dropped and created again at the start of a run.
/// </summary>
internal static class Bank
{
    public const string Schema = "twopc_verify";
    public const string Exchange = "twopc-verify";
    public const string Queue = "twopc-verify.transfers";
    public const string RoutingKey = "transfer";

    /// <summary>A transfer that must vote No: more than any account can hold, refused by the deferred balance check at PREPARE.</summary>
    public const long ImpossibleAmount = 1_000_000_000;

    public static int DatabaseOf(int account, int databases) => account % databases;

    public static async Task CreateAsync(string connectionString, int database, int databases, int accounts, long initialBalance, CancellationToken cancellationToken)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(cancellationToken);
        await connection.ExecuteAsync(new CommandDefinition($"""
            DROP SCHEMA IF EXISTS {Schema} CASCADE;
            CREATE SCHEMA {Schema};
            CREATE TABLE {Schema}.accounts (id int PRIMARY KEY, balance bigint NOT NULL);
            CREATE TABLE {Schema}.transfers (id text NOT NULL, from_account int NOT NULL, to_account int NOT NULL, amount bigint NOT NULL);
            CREATE TABLE {Schema}.consumed (transfer_id text NOT NULL, consumed_at timestamptz NOT NULL DEFAULT now());
            -- A negative balance fails the transaction when it commits or prepares (a deferred constraint trigger), so a
            -- transfer larger than the balance is a real No vote at PREPARE TRANSACTION, not an application decision.
            CREATE FUNCTION {Schema}.check_balance() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              IF (SELECT balance FROM {Schema}.accounts WHERE id = NEW.id) < 0 THEN
                RAISE EXCEPTION 'insufficient funds in account %', NEW.id USING ERRCODE = '23514';
              END IF;
              RETURN NULL;
            END $$;
            CREATE CONSTRAINT TRIGGER balance_not_negative AFTER UPDATE ON {Schema}.accounts
              DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {Schema}.check_balance();
            """, cancellationToken: cancellationToken));
        for (var account = 0; account < accounts; account++)
        {
            if (DatabaseOf(account, databases) == database)
            {
                await connection.ExecuteAsync(new CommandDefinition($"INSERT INTO {Schema}.accounts (id, balance) VALUES (@account, @initialBalance)", new { account, initialBalance }, cancellationToken: cancellationToken));
            }
        }
    }

    public static async Task<long> TotalBalanceAsync(string connectionString, CancellationToken cancellationToken)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        return await connection.ExecuteScalarAsync<long>(new CommandDefinition($"SELECT coalesce(sum(balance), 0)::bigint FROM {Schema}.accounts", cancellationToken: cancellationToken));
    }

    public static async Task<int> NegativeAccountsAsync(string connectionString, CancellationToken cancellationToken)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        return await connection.ExecuteScalarAsync<int>(new CommandDefinition($"SELECT count(*)::int FROM {Schema}.accounts WHERE balance < 0", cancellationToken: cancellationToken));
    }

    /// <summary>Transfer id → how many rows this database holds for it.</summary>
    public static async Task<Dictionary<string, int>> TransferRowsAsync(string connectionString, CancellationToken cancellationToken)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        var rows = await connection.QueryAsync<(string Id, int Count)>(new CommandDefinition($"SELECT id, count(*)::int FROM {Schema}.transfers GROUP BY id", cancellationToken: cancellationToken));
        return rows.ToDictionary(r => r.Id, r => r.Count, StringComparer.Ordinal);
    }

    /// <summary>Transfer id → how many times its message was consumed.</summary>
    public static async Task<Dictionary<string, int>> ConsumedAsync(string connectionString, CancellationToken cancellationToken)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        var rows = await connection.QueryAsync<(string Id, int Count)>(new CommandDefinition($"SELECT transfer_id, count(*)::int FROM {Schema}.consumed GROUP BY transfer_id", cancellationToken: cancellationToken));
        return rows.ToDictionary(r => r.Id, r => r.Count, StringComparer.Ordinal);
    }

    /// <summary>The last-resource commit markers in this database (TwoPC's <c>twopc.commit_markers</c>, created at the first marker commit or fence): whether the table exists, and its 'C' and 'A' rows.</summary>
    public static async Task<(bool Exists, long Committed, long Aborted)> MarkersAsync(string connectionString, CancellationToken cancellationToken)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        if (!await connection.ExecuteScalarAsync<bool>(new CommandDefinition("SELECT to_regclass('twopc.commit_markers') IS NOT NULL", cancellationToken: cancellationToken)))
        {
            return (false, 0, 0);
        }

        var (committed, aborted) = await connection.QuerySingleAsync<(long, long)>(new CommandDefinition(
            "SELECT count(*) FILTER (WHERE state = 'C'), count(*) FILTER (WHERE state = 'A') FROM twopc.commit_markers", cancellationToken: cancellationToken));
        return (true, committed, aborted);
    }

    /// <summary>The prepared transactions left in this database (any gid: the checker's database should have none).</summary>
    public static async Task<IReadOnlyList<string>> PreparedAsync(string connectionString, CancellationToken cancellationToken)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        var gids = await connection.QueryAsync<string>(new CommandDefinition("SELECT gid FROM pg_prepared_xacts WHERE database = current_database()", cancellationToken: cancellationToken));
        return gids.AsList();
    }
}
