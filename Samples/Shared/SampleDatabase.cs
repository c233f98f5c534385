using Npgsql;

namespace TwoPC.Samples;

/// <summary>Start-up helpers shared by the sample services: wait for PostgreSQL, create the database if it is missing.</summary>
internal static class SampleDatabase
{
    private const string InvalidCatalogName = "3D000";

    /// <summary>
    /// Waits (up to <paramref name="timeout"/>) until the server of <paramref name="connectionString"/> accepts
    /// connections, and creates its database when it does not exist yet (the role needs CREATEDB for that), so a
    /// fresh docker-compose PostgreSQL works without an init script.
    /// </summary>
    public static async Task EnsureCreatedAsync(string connectionString, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        var deadline = DateTimeOffset.UtcNow + timeout;
        while (true)
        {
            try
            {
                await using var connection = new NpgsqlConnection(connectionString);
                await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
                return;
            }
            catch (PostgresException ex) when (ex.SqlState == InvalidCatalogName)
            {
                await CreateAsync(connectionString, cancellationToken).ConfigureAwait(false);
            }
            catch (NpgsqlException) when (DateTimeOffset.UtcNow < deadline)
            {
                await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private static async Task CreateAsync(string connectionString, CancellationToken cancellationToken)
    {
        var target = new NpgsqlConnectionStringBuilder(connectionString);
        var name = target.Database ?? throw new InvalidOperationException("The connection string names no database.");
        var admin = new NpgsqlConnectionStringBuilder(connectionString) { Database = "postgres", Pooling = false };
        await using var connection = new NpgsqlConnection(admin.ConnectionString);
        await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand("CREATE DATABASE " + QuoteIdentifier(name), connection);
        try
        {
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (PostgresException ex) when (ex.SqlState is "42P04" or "23505")
        {
            // Created by another instance in the meantime.
        }
    }

    private static string QuoteIdentifier(string name) => "\"" + name.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
}
