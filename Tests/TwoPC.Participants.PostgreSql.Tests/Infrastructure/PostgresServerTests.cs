using System.Diagnostics;
using Npgsql;
using TwoPC.TestServers;

namespace TwoPC.Participants.PostgreSql.Tests.Infrastructure;

/// <summary>Smoke tests of the shared server from <see cref="PostgresFixture"/>.</summary>
[Collection(PostgresCollection.Name)]
public sealed class PostgresServerTests(PostgresFixture fixture) : IAsyncLifetime
{
    private string _connectionString = string.Empty;

    public async Task InitializeAsync() => _connectionString = await fixture.CreateDatabaseAsync();

    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task Server_listens_on_loopback_on_its_port()
    {
        var server = fixture.Server;

        Assert.Equal("127.0.0.1", server.Host);
        Assert.InRange(server.Port, 1, 65535);
        Assert.True(server.IsRunning);
        Assert.True(File.Exists(server.LogFile));
        Assert.Equal("127.0.0.1", (await Sql.ScalarAsync(_connectionString, "SELECT host(inet_server_addr())"))?.ToString());
        Assert.Equal(server.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), await Sql.ScalarAsync(_connectionString, "SHOW port"));
        Assert.Equal("127.0.0.1", await Sql.ScalarAsync(_connectionString, "SHOW listen_addresses"));
        Assert.Equal(server.SocketDirectory, await Sql.ScalarAsync(_connectionString, "SHOW unix_socket_directories"));
        Assert.Equal("UTF8", await Sql.ScalarAsync(_connectionString, "SHOW server_encoding"));
        Assert.Equal(PostgresServer.Superuser, await Sql.ScalarAsync(_connectionString, "SELECT current_user"));
    }

    [Fact]
    public async Task Settings_are_the_configured_ones()
    {
        Assert.Equal("64", await Sql.ScalarAsync(_connectionString, "SHOW max_prepared_transactions"));
        Assert.Equal("200", await Sql.ScalarAsync(_connectionString, "SHOW max_connections"));
        Assert.Equal("off", await Sql.ScalarAsync(_connectionString, "SHOW fsync"));
    }

    [Fact]
    public async Task CreateDatabaseAsync_creates_a_fresh_database_each_time()
    {
        var other = await fixture.CreateDatabaseAsync();

        var mine = new NpgsqlConnectionStringBuilder(_connectionString).Database;
        var theirs = new NpgsqlConnectionStringBuilder(other).Database;
        Assert.NotEqual(mine, theirs);
        Assert.Equal(mine, await Sql.ScalarAsync(_connectionString, "SELECT current_database()"));
        Assert.Equal(theirs, await Sql.ScalarAsync(other, "SELECT current_database()"));
        Assert.Equal(0L, await Sql.ScalarAsync(other, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"));
    }

    [Fact]
    public async Task Prepared_transaction_is_listed_until_committed()
    {
        await Sql.ExecuteAsync(_connectionString, "CREATE TABLE round_trip (id int PRIMARY KEY)");
        var gid = Sql.NewGid();

        await Sql.ExecuteAsync(_connectionString, $"BEGIN; INSERT INTO round_trip VALUES (1); PREPARE TRANSACTION '{gid}'");

        Assert.Equal(1L, await Sql.PreparedCountAsync(_connectionString, gid));
        Assert.Equal(
            new NpgsqlConnectionStringBuilder(_connectionString).Database,
            await Sql.ScalarAsync(_connectionString, $"SELECT database FROM pg_prepared_xacts WHERE gid = '{gid}'"));
        Assert.Equal(0L, await Sql.ScalarAsync(_connectionString, "SELECT count(*) FROM round_trip"));

        await Sql.ExecuteAsync(_connectionString, $"COMMIT PREPARED '{gid}'");

        Assert.Equal(0L, await Sql.PreparedCountAsync(_connectionString, gid));
        Assert.Equal(1L, await Sql.ScalarAsync(_connectionString, "SELECT count(*) FROM round_trip"));
    }

    [Fact]
    public async Task Rollback_prepared_discards_the_work()
    {
        await Sql.ExecuteAsync(_connectionString, "CREATE TABLE rolled_back (id int PRIMARY KEY)");
        var gid = Sql.NewGid();
        await Sql.ExecuteAsync(_connectionString, $"BEGIN; INSERT INTO rolled_back VALUES (1); PREPARE TRANSACTION '{gid}'");

        await Sql.ExecuteAsync(_connectionString, $"ROLLBACK PREPARED '{gid}'");

        Assert.Equal(0L, await Sql.PreparedCountAsync(_connectionString, gid));
        Assert.Equal(0L, await Sql.ScalarAsync(_connectionString, "SELECT count(*) FROM rolled_back"));
    }

    [Fact]
    public async Task Wrong_bin_directory_fails_with_a_clear_message()
    {
        var exception = await Assert.ThrowsAsync<TestServerException>(
            () => PostgresServer.StartAsync(new PostgresServerOptions { BinDirectory = "/nonexistent/twopc/bin" }));

        Assert.Contains("/nonexistent/twopc/bin", exception.Message, StringComparison.Ordinal);
        Assert.Contains("initdb", exception.Message, StringComparison.Ordinal);
    }
}

/// <summary>Tests that need a server of their own: crashes, other settings, several servers.</summary>
public sealed class PostgresServerLifecycleTests
{
    [Fact]
    public async Task RestartImmediateAsync_keeps_a_prepared_transaction()
    {
        await using var server = await PostgresServer.StartAsync();
        var connectionString = await server.CreateDatabaseAsync();
        await Sql.ExecuteAsync(connectionString, "CREATE TABLE crash (id int PRIMARY KEY)");
        var gid = Sql.NewGid();
        await Sql.ExecuteAsync(connectionString, $"BEGIN; INSERT INTO crash VALUES (7); PREPARE TRANSACTION '{gid}'");
        var port = server.Port;
        var pidBefore = await Sql.ScalarAsync(connectionString, "SELECT pg_backend_pid()");

        await server.RestartImmediateAsync();

        Assert.True(server.IsRunning);
        Assert.Equal(port, server.Port);
        Assert.Contains("database system was interrupted", await File.ReadAllTextAsync(server.LogFile), StringComparison.Ordinal);
        Assert.NotEqual(pidBefore, await Sql.ScalarAsync(connectionString, "SELECT pg_backend_pid()"));
        Assert.Equal(1L, await Sql.PreparedCountAsync(connectionString, gid));

        await Sql.ExecuteAsync(connectionString, $"COMMIT PREPARED '{gid}'");

        Assert.Equal(0L, await Sql.PreparedCountAsync(connectionString, gid));
        Assert.Equal(7, await Sql.ScalarAsync(connectionString, "SELECT id FROM crash"));
    }

    [Fact]
    public async Task Zero_max_prepared_transactions_makes_prepare_fail_with_55000()
    {
        await using var server = await PostgresServer.StartAsync(new PostgresServerOptions { MaxPreparedTransactions = 0, Fsync = false });
        var connectionString = await server.CreateDatabaseAsync();

        Assert.Equal("0", await Sql.ScalarAsync(connectionString, "SHOW max_prepared_transactions"));
        var exception = await Assert.ThrowsAsync<PostgresException>(
            () => Sql.ExecuteAsync(connectionString, $"BEGIN; CREATE TABLE t (id int); PREPARE TRANSACTION '{Sql.NewGid()}'"));
        Assert.Equal(PostgresErrorCodes.ObjectNotInPrerequisiteState, exception.SqlState);
        Assert.Equal("55000", exception.SqlState);
    }

    [Fact]
    public async Task Two_servers_run_at_once_on_different_ports()
    {
        var options = new PostgresServerOptions { Fsync = false, Settings = { ["application_name"] = "twopc-two-servers" } };
        var starts = new[] { PostgresServer.StartAsync(options), PostgresServer.StartAsync(options) };
        await using var first = await starts[0];
        await using var second = await starts[1];

        Assert.NotEqual(first.Port, second.Port);
        Assert.NotEqual(first.DataDirectory, second.DataDirectory);
        Assert.Equal(first.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), await Sql.ScalarAsync(first.ConnectionString(), "SHOW port"));
        Assert.Equal(second.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), await Sql.ScalarAsync(second.ConnectionString(), "SHOW port"));

        // Independent clusters: a database made on one does not exist on the other.
        var only = await first.CreateDatabaseAsync();
        var name = new NpgsqlConnectionStringBuilder(only).Database;
        Assert.Equal(0L, await Sql.ScalarAsync(second.ConnectionString(), $"SELECT count(*) FROM pg_database WHERE datname = '{name}'"));
    }

    [Fact]
    public async Task Startup_failure_explains_what_was_tried_and_shows_the_server_log()
    {
        var options = new PostgresServerOptions { Fsync = false, Settings = { ["shared_buffers"] = "not-a-size" } };

        var exception = await Assert.ThrowsAsync<TestServerException>(() => PostgresServer.StartAsync(options));

        Assert.Contains("did not start", exception.Message, StringComparison.Ordinal);
        Assert.Contains("pg_ctl start -D", exception.Message, StringComparison.Ordinal);
        Assert.Contains("data dir:", exception.Message, StringComparison.Ordinal);
        Assert.Contains("127.0.0.1:", exception.Message, StringComparison.Ordinal);
        Assert.Contains("lines of server log", exception.Message, StringComparison.Ordinal);
        Assert.Contains("shared_buffers", exception.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Stop_and_start_again_keep_the_data_and_dispose_deletes_everything()
    {
        var server = await PostgresServer.StartAsync(new PostgresServerOptions { Fsync = false });
        var connectionString = await server.CreateDatabaseAsync("kept_across_stop");
        await Sql.ExecuteAsync(connectionString, "CREATE TABLE kept (id int); INSERT INTO kept VALUES (1)");

        await server.StopAsync();
        Assert.False(server.IsRunning);
        NpgsqlConnection.ClearAllPools();
        await Assert.ThrowsAnyAsync<NpgsqlException>(() => Sql.ScalarAsync(connectionString, "SELECT 1"));

        await server.StartAgainAsync();
        Assert.Equal(1L, await Sql.ScalarAsync(connectionString, "SELECT count(*) FROM kept"));

        var directory = server.ServerDirectory;
        var stopwatch = Stopwatch.StartNew();
        await server.DisposeAsync();

        Assert.False(Directory.Exists(directory));
        Assert.InRange(stopwatch.Elapsed, TimeSpan.Zero, TimeSpan.FromSeconds(15));
        NpgsqlConnection.ClearAllPools();
        await Assert.ThrowsAnyAsync<NpgsqlException>(() => Sql.ScalarAsync(connectionString, "SELECT 1"));
    }
}

internal static class Sql
{
    public static string NewGid() => "twopc_test_" + Guid.NewGuid().ToString("N");

    public static async Task ExecuteAsync(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    public static async Task<object?> ScalarAsync(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return await command.ExecuteScalarAsync();
    }

    public static async Task<long> PreparedCountAsync(string connectionString, string gid)
        => (long)(await ScalarAsync(connectionString, $"SELECT count(*) FROM pg_prepared_xacts WHERE gid = '{gid}'"))!;
}
