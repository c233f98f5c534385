using Npgsql;

namespace TwoPC.Durability.PostgreSql;

/// <summary>Where the shared transaction log lives and how its node leases behave.</summary>
public sealed class PostgreSqlTransactionLogOptions
{
    /// <summary>The default <see cref="Schema"/>.</summary>
    public const string DefaultSchema = "twopc";

    /// <summary>
    /// The database, as a data source the caller owns (and disposes). Either this or <see cref="ConnectionString"/>.
    /// </summary>
    public NpgsqlDataSource? DataSource { get; set; }

    /// <summary>The database, as a connection string: the log creates and disposes its own data source. Either this or <see cref="DataSource"/>.</summary>
    public string? ConnectionString { get; set; }

    /// <summary>The schema of the log's tables (an identifier: letters, digits and _, at most 63 characters). Default <c>twopc</c>.</summary>
    public string Schema { get; set; } = DefaultSchema;

    /// <summary>How long a node's lease lasts without renewal (on the database's clock). Default 10 s.</summary>
    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How often the lease is renewed; must be less than half of <see cref="LeaseDuration"/>. Default 3 s.</summary>
    public TimeSpan RenewInterval { get; set; } = TimeSpan.FromSeconds(3);

    /// <summary>Whether opening the log creates its schema and tables when missing. Default <see langword="true"/>.</summary>
    public bool CreateSchema { get; set; } = true;

    /// <summary>
    /// How long opening waits for a live lease of the same node id (another process with this node id, or this node's
    /// previous run that died less than <see cref="LeaseDuration"/> ago) to expire. Default 30 s.
    /// </summary>
    public TimeSpan OpenTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How long a write, a renewal or a read retries while the database is unreachable (connection lost, server
    /// restarting) before the log fails. Default 30 s.
    /// </summary>
    public TimeSpan RetryTimeout { get; set; } = TimeSpan.FromSeconds(30);

    internal void Validate()
    {
        if ((DataSource is null) == string.IsNullOrWhiteSpace(ConnectionString))
        {
            throw new ArgumentException("Set exactly one of DataSource and ConnectionString.");
        }

        if (!IsIdentifier(Schema))
        {
            throw new ArgumentException($"Schema '{Schema}' is not an identifier (a letter or _, then letters, digits or _; at most 63 characters).");
        }

        if (LeaseDuration <= TimeSpan.Zero)
        {
            throw new ArgumentException("LeaseDuration must be positive.");
        }

        if (RenewInterval <= TimeSpan.Zero || RenewInterval >= LeaseDuration / 2)
        {
            throw new ArgumentException($"RenewInterval ({RenewInterval}) must be positive and less than half of LeaseDuration ({LeaseDuration}).");
        }

        if (OpenTimeout < TimeSpan.Zero)
        {
            throw new ArgumentException("OpenTimeout must not be negative.");
        }

        if (RetryTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentException("RetryTimeout must be positive.");
        }
    }

    internal static bool IsIdentifier(string? name) =>
        name is { Length: > 0 and <= 63 }
        && (char.IsAsciiLetter(name[0]) || name[0] == '_')
        && name.All(c => char.IsAsciiLetterOrDigit(c) || c == '_');
}
