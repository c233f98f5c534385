using System.Diagnostics;
using System.Globalization;
using Npgsql;
using RabbitMQ.Client;
using TwoPC.Client;
using TwoPC.TestServers;
using TwoPC.TestServers.Internal;

namespace TwoPC.Samples.Demo;

/// <summary>
/// Everything the demo runs: one private PostgreSQL server (databases orders, payments, shipping) and one private
/// RabbitMQ node on loopback, and the coordinator, payment, order and shipping services as child processes on free
/// loopback ports, configured with the same keys docker-compose uses. Disposing stops all of it.
/// </summary>
internal sealed partial class DemoEnvironment : IAsyncDisposable
{
    public const string CoordinatorNode = "coordinator-1";

    private readonly DemoOptions _options;
    private readonly List<ChildProcess> _retired = [];
    private readonly string _adminKey = Guid.NewGuid().ToString("N");
    // Each participant's own key, random per run and given to it and to the coordinator only: callbacks are signed with it.
    private readonly string _paymentsKey = NewKey();
    private readonly string _ordersKey = NewKey();
    private readonly string _ordersApiKey = NewKey();
    private PostgresServer? _postgres;
    private RabbitMqServer? _rabbitMq;

    private DemoEnvironment(DemoOptions options)
    {
        _options = options;
        WorkDirectory = Directory.CreateTempSubdirectory("twopc-demo-").FullName;
        CoordinatorLog = Path.Combine(WorkDirectory, "coordinator-log");
    }

    public string WorkDirectory { get; }

    public string CoordinatorLog { get; }

    public PostgresServer Postgres => _postgres ?? throw new InvalidOperationException("Not started.");

    public RabbitMqServer RabbitMq => _rabbitMq ?? throw new InvalidOperationException("Not started.");

    public IConnection Broker { get; private set; } = null!;

    public NpgsqlDataSource OrdersDb { get; private set; } = null!;

    public NpgsqlDataSource PaymentsDb { get; private set; } = null!;

    public NpgsqlDataSource ShippingDb { get; private set; } = null!;

    public ServiceEndpoint Coordinator { get; private set; } = null!;

    /// <summary>The second coordinator node of the failover scenario (null until it starts).</summary>
    public ServiceEndpoint? Standby { get; private set; }

    public ServiceEndpoint Payments { get; private set; } = null!;

    public ServiceEndpoint Orders { get; private set; } = null!;

    public ServiceEndpoint Shipping { get; private set; } = null!;

    public IEnumerable<ServiceEndpoint> Services => Standby is null ? [Coordinator, Payments, Orders, Shipping] : [Coordinator, Standby, Payments, Orders, Shipping];

    /// <summary>For the demo's own calls (checkouts, chaos controls); long timeout (a held commit waits).</summary>
    public HttpClient Http { get; } = new() { Timeout = TimeSpan.FromSeconds(90) };

    /// <summary>The coordinator's API (same port across restarts).</summary>
    public TwoPCClient CoordinatorClient { get; private set; } = null!;

    /// <summary>The coordinator's admin API (the demo sets its key).</summary>
    public TwoPCAdminClient AdminClient { get; private set; } = null!;

    public static async Task<DemoEnvironment> StartAsync(DemoOptions options, Narrator say, CancellationToken cancellationToken)
    {
        var env = new DemoEnvironment(options);
        try
        {
            await env.StartCoreAsync(say, cancellationToken);
            return env;
        }
        catch
        {
            env.PrintServiceTails(say);
            await env.DisposeAsync();
            throw;
        }
    }

    private async Task StartCoreAsync(Narrator say, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        say.Line("Starting a private PostgreSQL server and a private RabbitMQ node on loopback (installed with apt if missing) ...");
        var postgres = PostgresServer.StartAsync(
            new PostgresServerOptions { MaxPreparedTransactions = 100, MaxConnections = 300 },
            cancellationToken);
        var rabbitMq = RabbitMqServer.StartAsync(cancellationToken: cancellationToken);
        try
        {
            await Task.WhenAll(postgres, rabbitMq);
        }
        finally
        {
            // Keep whichever started, so dispose stops it.
            _postgres = postgres.IsCompletedSuccessfully ? postgres.Result : null;
            _rabbitMq = rabbitMq.IsCompletedSuccessfully ? rabbitMq.Result : null;
        }

        say.Line($"  PostgreSQL  {Postgres.Host}:{Postgres.Port}  ({FirstWords(Postgres.Version, 3)}, max_prepared_transactions=100)");
        say.Line($"  RabbitMQ    {RabbitMq.AmqpUri.Host}:{RabbitMq.AmqpUri.Port}  ({RabbitMq.Version})");
        var orders = ServiceConnectionString(await Postgres.CreateDatabaseAsync("orders", cancellationToken));
        var payments = ServiceConnectionString(await Postgres.CreateDatabaseAsync("payments", cancellationToken));
        var shipping = ServiceConnectionString(await Postgres.CreateDatabaseAsync("shipping", cancellationToken));
        OrdersDb = NpgsqlDataSource.Create(orders);
        PaymentsDb = NpgsqlDataSource.Create(payments);
        ShippingDb = NpgsqlDataSource.Create(shipping);
        Broker = await new ConnectionFactory { Uri = RabbitMq.AmqpUri, ClientProvidedName = "demo" }.CreateConnectionAsync(cancellationToken);

        var coordinatorPort = FreePort.OnLoopback();
        var paymentsPort = FreePort.OnLoopback();
        var ordersPort = FreePort.OnLoopback();
        var shippingPort = FreePort.OnLoopback();
        Coordinator = new ServiceEndpoint("coordinator", "Coordinator/TwoPC.Coordinator.Server", coordinatorPort,
        [
            $"--TwoPC:NodeId={CoordinatorNode}",
            $"--TwoPC:LogDirectory={CoordinatorLog}",
            "--TwoPC:RetryBaseDelay=00:00:00.050",
            "--TwoPC:RetryMaxDelay=00:00:01",
            $"--Admin:ApiKey={_adminKey}",
            $"--Coordinator:RabbitMq:Uri={RabbitMq.AmqpUri}",
            $"--Coordinator:Participants:orders:CallbackUrl={Url(ordersPort)}twopc",
            $"--Coordinator:Participants:orders:Key={_ordersKey}",
            $"--Coordinator:Participants:payments:CallbackUrl={Url(paymentsPort)}twopc",
            $"--Coordinator:Participants:payments:Key={_paymentsKey}",
            // The transaction API authenticated, as in production: the order service begins and commits with its API key,
            // the participants sign their calls, and the demo reads statuses with the admin key.
            "--Coordinator:Authentication:AllowAnonymous=false",
            $"--Coordinator:Clients:orders:ApiKey={_ordersApiKey}",
            "--Logging:LogLevel:Default=Warning",
            "--Logging:LogLevel:Microsoft.Hosting.Lifetime=Information",
            "--Logging:LogLevel:TwoPC=Information",
        ]);
        Payments = new ServiceEndpoint("payments", "Samples/TwoPC.Samples.Payments", paymentsPort,
        [
            $"--ConnectionStrings:Payments={payments}",
            "--TwoPC:Participant:Name=payments",
            $"--TwoPC:Participant:Key={_paymentsKey}",
            $"--TwoPC:Participant:CoordinatorUrl={Url(coordinatorPort)}",
            $"--TwoPC:Participant:CallbackUrl={Url(paymentsPort)}twopc",
            "--TwoPC:Participant:RecoveryInterval=00:00:05",
            "--Demo:Chaos=true",
            "--Logging:LogLevel:Default=Warning",
            "--Logging:LogLevel:TwoPC=Information",
            "--Logging:LogLevel:TwoPC.Participants.Remote=Debug", // the coordinator's callbacks, for the narrative
        ]);
        Orders = new ServiceEndpoint("orders", "Samples/TwoPC.Samples.Orders", ordersPort,
        [
            $"--ConnectionStrings:Orders={orders}",
            $"--Coordinator:Url={Url(coordinatorPort)}",
            $"--Coordinator:ApiKey={_ordersApiKey}",
            $"--Payments:Url={Url(paymentsPort)}",
            "--TwoPC:Participant:Name=orders",
            $"--TwoPC:Participant:Key={_ordersKey}",
            $"--TwoPC:Participant:CallbackUrl={Url(ordersPort)}twopc",
            "--TwoPC:Participant:RecoveryInterval=00:00:05",
            "--Logging:LogLevel:Default=Warning",
            "--Logging:LogLevel:TwoPC=Information",
            "--Logging:LogLevel:TwoPC.Participants.Remote=Debug", // the coordinator's callbacks, for the narrative
        ]);
        Shipping = new ServiceEndpoint("shipping", "Samples/TwoPC.Samples.Shipping", shippingPort,
        [
            $"--ConnectionStrings:Shipping={shipping}",
            $"--RabbitMq:Uri={RabbitMq.AmqpUri}",
            "--Logging:LogLevel:Default=Warning",
            "--Logging:LogLevel:TwoPC=Information",
            "--Logging:LogLevel:TwoPC.Participants.RabbitMq.Inbox=Debug",
        ]);

        var statusReader = new HttpClient { BaseAddress = Coordinator.Url, Timeout = TimeSpan.FromSeconds(30) };
        statusReader.DefaultRequestHeaders.Add(AdminKeyHeader, _adminKey); // the admin key reads any transaction's status
        CoordinatorClient = new TwoPCClient(statusReader);
        AdminClient = new TwoPCAdminClient(new HttpClient { BaseAddress = Coordinator.Url, Timeout = TimeSpan.FromSeconds(30) }, _adminKey);
        await Task.WhenAll(Services.Select(s => StartServiceAsync(s, cancellationToken)));
        foreach (var service in Services)
        {
            say.Line($"  {service.Name,-12}{service.Url}");
        }

        say.Line($"Ready in {clock.Elapsed.TotalSeconds:0.0} s. The coordinator's log: {CoordinatorLog}");
    }

    /// <summary>SIGKILLs the coordinator (no shutdown, no flush: its write-ahead log is all that survives).</summary>
    public void KillCoordinator() => Coordinator.Process.Kill();

    /// <summary>Starts the coordinator again on the same port and the same log: it recovers before it serves.</summary>
    public Task RestartCoordinatorAsync(CancellationToken cancellationToken) => StartServiceAsync(Coordinator, cancellationToken);

    /// <summary>Runs Samples/TwoPC.Samples.Embedded once (one checkout with an embedded coordinator) and returns the finished process.</summary>
    public async Task<ChildProcess> RunEmbeddedAsync(string customerId, string sku, int quantity, decimal amount, CancellationToken cancellationToken)
    {
        var process = ChildProcess.Start("embedded", "Samples/TwoPC.Samples.Embedded",
        [
            $"--ConnectionStrings:Orders={OrdersDb.ConnectionString}",
            $"--ConnectionStrings:Payments={PaymentsDb.ConnectionString}",
            $"--RabbitMq:Uri={RabbitMq.AmqpUri}",
            "--TwoPC:NodeId=embedded-1",
            $"--TwoPC:LogDirectory={Path.Combine(WorkDirectory, "embedded-log")}",
            $"--Checkout:CustomerId={customerId}",
            $"--Checkout:Sku={sku}",
            $"--Checkout:Quantity={quantity.ToString(CultureInfo.InvariantCulture)}",
            $"--Checkout:Amount={amount.ToString(CultureInfo.InvariantCulture)}",
            .. ConsoleLogging,
        ], _options.Verbose);
        _retired.Add(process);
        await process.WaitForExitAsync(TimeSpan.FromSeconds(60), cancellationToken);
        return process;
    }

    /// <summary>Prints the last lines of every service's output (after a failure).</summary>
    public void PrintServiceTails(Narrator say)
    {
        foreach (var service in new[] { Coordinator, Payments, Orders, Shipping }.Where(s => s?.Current is not null))
        {
            say.Line($"  --- last lines of {service.Name}{(service.Current!.HasExited ? $" (exited, code {service.Current.ExitCode})" : string.Empty)}:");
            say.Line(service.Current.Tail());
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var service in new[] { Orders, Payments, Shipping, Coordinator, Standby })
        {
            service?.Current?.Dispose();
        }

        foreach (var process in _retired)
        {
            process.Dispose();
        }

        if (_forwarder is not null)
        {
            await _forwarder.DisposeAsync();
        }

        Http.Dispose();
        CoordinatorClient?.Http.Dispose();
        AdminClient?.Http.Dispose();
        if (Broker is not null)
        {
            await Broker.DisposeAsync();
        }

        foreach (var source in new[] { OrdersDb, PaymentsDb, ShippingDb })
        {
            if (source is not null)
            {
                await source.DisposeAsync();
            }
        }

        if (_rabbitMq is not null)
        {
            await _rabbitMq.DisposeAsync();
        }

        if (_postgres is not null)
        {
            await _postgres.DisposeAsync();
        }

        try
        {
            Directory.Delete(WorkDirectory, recursive: true);
        }
        catch (IOException)
        {
            // Best effort.
        }
    }

    // Every child logs one line per message (easy to grep, and the narrative quotes them), without colours.
    private static readonly string[] ConsoleLogging =
    [
        "--Logging:Console:FormatterName=simple",
        "--Logging:Console:FormatterOptions:SingleLine=true",
        "--Logging:Console:FormatterOptions:ColorBehavior=Disabled",
        "--Logging:Console:FormatterOptions:TimestampFormat=HH:mm:ss.fff ",
    ];

    private async Task StartServiceAsync(ServiceEndpoint service, CancellationToken cancellationToken)
    {
        if (service.Current is not null)
        {
            service.Current.Kill();
            _retired.Add(service.Current);
        }

        var process = ChildProcess.Start(service.Name, service.Project, [$"--Urls={service.Url.AbsoluteUri.TrimEnd('/')}", .. service.Arguments, .. ConsoleLogging], _options.Verbose);
        service.Current = process;
        var ready = await process.WaitForLineAsync(
            line => line.StartsWith("ready ", StringComparison.Ordinal) || line.Contains("Now listening on:", StringComparison.Ordinal),
            TimeSpan.FromSeconds(90),
            cancellationToken);
        if (ready is null)
        {
            throw new InvalidOperationException($"{service.Name} exited (code {process.ExitCode}) before it was ready:\n{process.Tail()}");
        }

        var clock = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                using var health = await Http.GetAsync(new Uri(service.Url, "health"), cancellationToken);
                if (health.IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (HttpRequestException) when (clock.Elapsed < TimeSpan.FromSeconds(30))
            {
            }

            if (clock.Elapsed > TimeSpan.FromSeconds(30))
            {
                throw new InvalidOperationException($"{service.Name} did not report healthy within 30 s:\n{process.Tail()}");
            }

            await Task.Delay(50, cancellationToken);
        }
    }

    private static string ServiceConnectionString(string connectionString) =>
        new NpgsqlConnectionStringBuilder(connectionString) { MaxPoolSize = 40 }.ConnectionString;

    private const string AdminKeyHeader = "X-Api-Key";

    private static string NewKey() => Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));

    private static Uri Url(int port) => new(string.Create(CultureInfo.InvariantCulture, $"http://127.0.0.1:{port}/"));

    private static string FirstWords(string text, int count) => string.Join(' ', text.Split(' ').Take(count));
}

/// <summary>A service of the demo: its program, port and configuration, and the process running it now.</summary>
internal sealed class ServiceEndpoint(string name, string project, int port, IReadOnlyList<string> arguments)
{
    public string Name { get; } = name;

    public string Project { get; } = project;

    public Uri Url { get; } = new(string.Create(CultureInfo.InvariantCulture, $"http://127.0.0.1:{port}/"));

    public IReadOnlyList<string> Arguments { get; } = arguments;

    public ChildProcess? Current { get; set; }

    public ChildProcess Process => Current ?? throw new InvalidOperationException($"{Name} is not running.");
}
