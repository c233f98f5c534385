using System.Diagnostics;
using Npgsql;
using TwoPC.Client;
using TwoPC.Testing;
using TwoPC.TestServers;
using TwoPC.TestServers.Internal;

namespace TwoPC.Participants.Remote.Tests;

/// <summary>One private PostgreSQL server for the "remote" collection; each test creates its own databases.</summary>
public sealed class RemoteFixture : IAsyncLifetime
{
    private PostgresServer? _server;

    public PostgresServer Server => _server ?? throw new InvalidOperationException("Not started.");

    public async Task InitializeAsync() => _server = await PostgresServer.StartAsync(new PostgresServerOptions
    {
        MaxPreparedTransactions = 64,
        MaxConnections = 200,
        Fsync = false, // the tests kill processes, not the machine
    });

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }
}

[CollectionDefinition(Name)]
public sealed class RemoteCollection : ICollectionFixture<RemoteFixture>
{
    public const string Name = "remote";
}

/// <summary>The standalone coordinator as a separate process on a fixed loopback port and log directory, so it can be SIGKILLed and restarted on the same log.</summary>
public sealed class CoordinatorProcess : IDisposable
{
    public const string AdminKey = "remote-test-admin-key";

    private CrashHostProcess? _process;

    public CoordinatorProcess(string logDirectory)
    {
        LogDirectory = logDirectory;
        Port = FreePort.OnLoopback();
    }

    /// <summary>
    /// Unique per coordinator: the tests share one PostgreSQL server, where a prepared transaction's gid (the XID, which
    /// names the node) is server-wide, so a branch one test leaves prepared must not collide with another test's XIDs.
    /// A test may change it (with <see cref="LogDirectory"/>) before a restart: a coordinator renamed on a new log.
    /// </summary>
    public string NodeId { get; set; } = NewNodeId();

    /// <summary>The log directory of the next start.</summary>
    public string LogDirectory { get; set; }

    public static string NewNodeId() => "remote-" + Guid.NewGuid().ToString("N")[..12];

    public int Port { get; }

    public Uri Url => new($"http://127.0.0.1:{Port}/");

    public CrashHostProcess Process => _process ?? throw new InvalidOperationException("Not started.");

    /// <summary>The participants configured at the next start (name, callback URL, key): the only ones it calls back.</summary>
    public List<LedgerProcess> Participants { get; } = [];

    public TwoPCClient Client(HttpClient http) => new(http);

    public async Task StartAsync()
    {
        _process?.Dispose();
        _process = CrashHostProcess.StartProgram(Path.Combine("Coordinator", "TwoPC.Coordinator.Server"), [
            $"--Urls=http://127.0.0.1:{Port}",
            $"--TwoPC:NodeId={NodeId}",
            $"--TwoPC:LogDirectory={LogDirectory}",
            "--TwoPC:RetryBaseDelay=00:00:00.050",
            "--TwoPC:RetryMaxDelay=00:00:00.300",
            "--TwoPC:RollbackAttempts=2",
            $"--Admin:ApiKey={AdminKey}",
            "--Coordinator:ParticipantCallTimeout=00:00:05",
            "--Coordinator:Authentication:AllowAnonymous=true",
            .. Participants.SelectMany(p => new[] { $"--Coordinator:Participants:{p.Name}:CallbackUrl={p.CallbackUrl}", $"--Coordinator:Participants:{p.Name}:Key={p.Key}" }),
            "--Logging:LogLevel:Default=Warning",
            "--Logging:LogLevel:Microsoft.Hosting.Lifetime=Information",
        ]);
        await _process.WaitForLineAsync(TimeSpan.FromSeconds(60), "Now listening on:", "      Now listening on:");
        using var http = new HttpClient { BaseAddress = Url };
        await Eventually.TrueAsync(async () => (await http.GetAsync("health")).IsSuccessStatusCode, TimeSpan.FromSeconds(30), _process.Describe);
    }

    public void Kill() => _process?.Kill();

    public void Dispose() => _process?.Dispose();
}

/// <summary>A ledger service (Tests/TwoPC.RemoteHost) as a separate process with its own database.</summary>
public sealed class LedgerProcess : IDisposable
{
    private CrashHostProcess? _process;

    public LedgerProcess(string name, string connectionString, Uri coordinator)
    {
        Name = name;
        ConnectionString = connectionString;
        Coordinator = coordinator;
        Port = FreePort.OnLoopback();
    }

    public string Name { get; }

    public string ConnectionString { get; }

    public Uri Coordinator { get; }

    public int Port { get; }

    public Uri Url => new($"http://127.0.0.1:{Port}/");

    public Uri CallbackUrl => new($"http://127.0.0.1:{Port}/twopc");

    /// <summary>This ledger's key, shared with the coordinator only (random per process object).</summary>
    public string Key { get; } = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));

    public CrashHostProcess Process => _process ?? throw new InvalidOperationException("Not started.");

    public async Task StartAsync()
    {
        _process?.Dispose();
        _process = CrashHostProcess.StartProgram(Path.Combine("Tests", "TwoPC.RemoteHost"), [
            $"--Urls=http://127.0.0.1:{Port}",
            $"--ConnectionString={ConnectionString}",
            $"--TwoPC:Participant:Name={Name}",
            $"--TwoPC:Participant:CoordinatorUrl={Coordinator}",
            $"--TwoPC:Participant:CallbackUrl={CallbackUrl}",
            $"--TwoPC:Participant:Key={Key}",
            "--TwoPC:Participant:RecoveryInterval=00:00:00.500",
            "--TwoPC:Participant:OrphanSafetyInterval=00:00:05",
            "--Logging:LogLevel:Default=Warning",
            "--Logging:LogLevel:TwoPC=Information",
        ]);
        var ready = await _process.WaitForLineAsync(TimeSpan.FromSeconds(60), "ready ");
        Assert.True(ready is not null, "The ledger service did not start.\n" + _process.Describe());
    }

    public void Kill() => _process?.Kill();

    public async Task<int> CountAsync(string id)
    {
        await using var connection = new NpgsqlConnection(ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT count(*) FROM entries WHERE id = @id", connection);
        command.Parameters.AddWithValue("id", id);
        return Convert.ToInt32(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }

    public async Task<long> PreparedAsync()
    {
        await using var connection = new NpgsqlConnection(ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database()", connection);
        return (long)(await command.ExecuteScalarAsync())!;
    }

    public void Dispose() => _process?.Dispose();
}
