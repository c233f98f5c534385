using Dapper;
using Npgsql;
using TwoPC.Testing;
using TwoPC.TestServers;

namespace TwoPC.Participants.PostgreSql.Tests.LastResource;

/// <summary>
/// One crash run of the last-resource commit with real processes, shared by <see cref="LastResourceCrashTests"/> and
/// <see cref="LastResourceServerCrashTests"/>: two or three fresh databases on a PostgreSQL server (A, enlisted first,
/// is the last resource), a coordinator process (Tests/TwoPC.CrashHost <c>pg-run --lrc</c>) SIGKILLed at a crash point,
/// recovery processes (<c>pg-recover --lrc</c>) on the same log, and the reads that judge the outcome.
/// </summary>
internal sealed class LastResourceCrashRun : IAsyncDisposable
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    private readonly string[] _databases;
    private readonly string _log = Directory.CreateTempSubdirectory("twopc-lrc-crash-").FullName;
    private readonly List<string> _transcript = [];

    // Prepared gids are unique per server: a node id of its own keeps one failed run from breaking the next.
    private readonly string _node = "lrc-" + Guid.NewGuid().ToString("N")[..8];
    private string? _gtrid;

    private LastResourceCrashRun(string[] databases) => _databases = databases;

    /// <summary>What the processes printed and what the test did between them, for failure messages.</summary>
    public string Transcript => string.Join("\n", _transcript);

    public static async Task<LastResourceCrashRun> PrepareAsync(PostgresServer server, int databases)
    {
        var connectionStrings = new string[databases];
        for (var i = 0; i < databases; i++)
        {
            connectionStrings[i] = await server.CreateDatabaseAsync();
            await using var c = new NpgsqlConnection(connectionStrings[i]);
            await c.ExecuteAsync("CREATE TABLE items (id int PRIMARY KEY, value int NOT NULL); INSERT INTO items VALUES (1, 0)");
        }

        return new LastResourceCrashRun(connectionStrings);
    }

    /// <summary>Adds a line to <see cref="Transcript"/> (what the test did, e.g. a server restart).</summary>
    public void Note(string line) => _transcript.Add(line);

    public Task RunAndKillAsync(params string[] crash) => RunAndKillAsync(whileFrozen: null, crash);

    /// <summary>Runs one transaction until the crash point, runs <paramref name="whileFrozen"/> (if any) while the process is frozen there, then SIGKILLs it.</summary>
    public async Task RunAndKillAsync(Func<Task>? whileFrozen, params string[] crash)
    {
        using var host = CrashHostProcess.Start(["pg-run", "--lrc", .. Connections(), .. crash]);
        var line = await host.WaitForLineAsync(Wait, "CRASHPOINT", "DONE");
        _transcript.Add(host.Describe());
        Assert.True(line?.StartsWith("CRASHPOINT", StringComparison.Ordinal) == true, host.Describe());
        _gtrid = host.StdoutLines.First(l => l.StartsWith("BEGUN ", StringComparison.Ordinal))["BEGUN ".Length..];
        if (whileFrozen is not null)
        {
            await whileFrozen();
        }

        host.Kill();
        await host.WaitForExitAsync(Wait);
    }

    public Task RecoverAndKillAsync(params string[] crash) => RecoverAndKillAsync(false, crash);

    public async Task RecoverAndKillAsync(bool allowFinished, params string[] crash)
    {
        using var host = CrashHostProcess.Start(["pg-recover", "--lrc", .. Connections(), .. crash]);
        var line = await host.WaitForLineAsync(Wait, "CRASHPOINT", "RECOVERED");
        _transcript.Add(host.Describe());
        Assert.True(line?.StartsWith("CRASHPOINT", StringComparison.Ordinal) == true || (allowFinished && line == "RECOVERED"), host.Describe());
        host.Kill();
        await host.WaitForExitAsync(Wait);
    }

    public async Task RecoverAsync()
    {
        using var host = CrashHostProcess.Start(["pg-recover", "--lrc", .. Connections()]);
        var exit = await host.WaitForExitAsync(Wait);
        _transcript.Add(host.Describe());
        Assert.True(exit == 0 && host.StdoutLines.Contains("RECOVERED"), host.Describe());
        Assert.DoesNotContain(host.StdoutLines, l => l.StartsWith("HEURISTIC", StringComparison.Ordinal));
    }

    public async Task<int[]> ValuesAsync()
    {
        var values = new int[_databases.Length];
        for (var i = 0; i < values.Length; i++)
        {
            await using var c = new NpgsqlConnection(_databases[i]);
            values[i] = await c.ExecuteScalarAsync<int>("SELECT value FROM items WHERE id = 1");
        }

        return values;
    }

    public async Task<long[]> PreparedAsync()
    {
        var prepared = new long[_databases.Length];
        for (var i = 0; i < prepared.Length; i++)
        {
            await using var c = new NpgsqlConnection(_databases[i]);
            prepared[i] = await c.ExecuteScalarAsync<long>("SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database()");
        }

        return prepared;
    }

    /// <summary>The marker of the transaction in A ('C', 'A' or null).</summary>
    public async Task<string?> MarkerAsync()
    {
        return await CommitMarkerTable.StateAsync(_databases[0], _gtrid!);
    }

    public async Task AssertAtomicAsync(int expected)
    {
        Assert.True(Enumerable.Repeat(expected, _databases.Length).SequenceEqual(await ValuesAsync()), $"values {string.Join(",", await ValuesAsync())}, expected all {expected}\n{Transcript}");
        Assert.True((await PreparedAsync()).All(p => p == 0), Transcript);
        Assert.True(await MarkerAsync() is null or "A", $"a committed marker was left behind\n{Transcript}");
    }

    public ValueTask DisposeAsync()
    {
        Directory.Delete(_log, recursive: true);
        return ValueTask.CompletedTask;
    }

    private string[] Connections()
    {
        string[] args = ["--node", _node, "--log", _log, "--db-a", _databases[0], "--db-b", _databases[1]];
        return _databases.Length > 2 ? [.. args, "--db-c", _databases[2]] : args;
    }
}
