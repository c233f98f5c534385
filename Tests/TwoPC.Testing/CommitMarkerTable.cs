using Npgsql;

namespace TwoPC.Testing;

/// <summary>Reads the last-resource commit markers (<c>twopc.commit_markers</c>) of a test database, as the assertions need them.</summary>
public static class CommitMarkerTable
{
    /// <summary>The marker state of <paramref name="gtrid"/> ('C' or 'A'), or null when there is none (or no table yet).</summary>
    public static async Task<string?> StateAsync(NpgsqlConnection connection, string gtrid)
    {
        ArgumentNullException.ThrowIfNull(connection);
        if (connection.State != System.Data.ConnectionState.Open)
        {
            await connection.OpenAsync().ConfigureAwait(false);
        }

        // The table is created on first use, so it may not exist yet (a query naming it would fail to parse).
        await using (var exists = new NpgsqlCommand("SELECT to_regclass('twopc.commit_markers') IS NOT NULL", connection))
        {
            if (!(bool)(await exists.ExecuteScalarAsync().ConfigureAwait(false))!)
            {
                return null;
            }
        }

        await using var command = new NpgsqlCommand("SELECT state::text FROM twopc.commit_markers WHERE gtrid = $1", connection);
        command.Parameters.AddWithValue(gtrid);
        return await command.ExecuteScalarAsync().ConfigureAwait(false) as string;
    }

    /// <summary><see cref="StateAsync(NpgsqlConnection, string)"/> on a connection of its own to <paramref name="connectionString"/>.</summary>
    public static async Task<string?> StateAsync(string connectionString, string gtrid)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        return await StateAsync(connection, gtrid).ConfigureAwait(false);
    }
}
