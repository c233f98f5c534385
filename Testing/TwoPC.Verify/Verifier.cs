using System.Diagnostics;
using System.Globalization;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;
using TwoPC.Participants.RabbitMq;
using TwoPC.TestServers;

namespace TwoPC.Verify;

/// <summary>What a run is told: where the bank lives, how long to run, which faults to inject.</summary>
internal sealed record RunSettings
{
    public required IReadOnlyList<string> Databases { get; init; }

    public required Uri Amqp { get; init; }

    public required string WorkDirectory { get; init; }

    public required TimeSpan Duration { get; init; }

    public required int Seed { get; init; }

    public int Concurrency { get; init; } = 8;

    public int Accounts { get; init; } = 16;

    public long InitialBalance { get; init; } = 1_000;

    public int TimeoutSeconds { get; init; } = 5;

    public TimeSpan MinFaultInterval { get; init; } = TimeSpan.FromSeconds(2);

    public TimeSpan MaxFaultInterval { get; init; } = TimeSpan.FromSeconds(6);

    public required IReadOnlyList<string> Faults { get; init; }

    /// <summary>The run goes on past <see cref="Duration"/> (up to three times it) until this many faults were injected.</summary>
    public int MinimumFaults { get; init; }

    public TimeSpan HealTimeout { get; init; } = TimeSpan.FromSeconds(120);

    /// <summary>The workers' <c>TwoPC:LastResourceCommit</c>; null: not passed, the library's default applies.</summary>
    public bool? LastResourceCommit { get; init; }

    /// <summary>Whether the workers run the last-resource commit (the option, or the library's default).</summary>
    public bool LastResourceCommitOn => LastResourceCommit ?? new TwoPC.Hosting.TwoPCOptions().LastResourceCommit;

    /// <summary>"on", "off", or "on (library default)" / "off (library default)".</summary>
    public string LastResourceCommitText => (LastResourceCommitOn ? "on" : "off") + (LastResourceCommit is null ? " (library default)" : string.Empty);
}

/// <summary>
/// Runs the bank under faults: starts the consumer and the worker, injects a fault every few seconds (chosen by the
/// seed), then heals — the last worker is killed, a recover-only worker finishes every logged decision and rolls back
/// orphans, the consumer drains the queue — and checks the result (<see cref="Checks"/>).
/// </summary>
internal sealed class Verifier(RunSettings settings, History history, IReadOnlyList<PostgresServer> postgres, RabbitMqServer? rabbitMq, TextWriter progress)
{
    public const string ParkingQueue = "twopc.parked";
    private readonly Random _random = new(settings.Seed);
    private readonly List<Fault> _faults = [];
    private int _incarnation;
    private ChildProcess? _worker;
    private ChildProcess? _consumer;

    public IReadOnlyList<Fault> Faults => _faults;

    public TimeSpan Elapsed { get; private set; }

    public async Task<(IReadOnlyList<Check> Checks, FinalState Final)> RunAsync(CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(settings.WorkDirectory);
        for (var i = 0; i < settings.Databases.Count; i++)
        {
            await Bank.CreateAsync(settings.Databases[i], i, settings.Databases.Count, settings.Accounts, settings.InitialBalance, cancellationToken);
        }

        await PrepareBrokerAsync(cancellationToken);
        var log = Path.Combine(settings.WorkDirectory, "log");
        if (Directory.Exists(log))
        {
            Directory.Delete(log, recursive: true);
        }

        _consumer = await StartConsumerAsync();
        _worker = await StartWorkerAsync(recoverOnly: false);
        var run = Stopwatch.StartNew();
        try
        {
            bool Running() => run.Elapsed < settings.Duration
                || (settings.Faults.Count > 0 && _faults.Count < settings.MinimumFaults && run.Elapsed < settings.Duration * 3);
            while (Running())
            {
                var pause = settings.MinFaultInterval + (settings.MaxFaultInterval - settings.MinFaultInterval) * _random.NextDouble();
                var left = settings.Duration - run.Elapsed;
                await Task.Delay(left > TimeSpan.Zero && left < pause ? left : pause, cancellationToken);
                if (!Running() || settings.Faults.Count == 0)
                {
                    continue;
                }

                await InjectAsync(settings.Faults[_random.Next(settings.Faults.Count)], cancellationToken);
            }

            Elapsed = run.Elapsed;
            return await HealAndCheckAsync(cancellationToken);
        }
        finally
        {
            _worker?.Dispose();
            _consumer?.Dispose();
        }
    }

    private async Task InjectAsync(string kind, CancellationToken cancellationToken)
    {
        switch (kind)
        {
            case "coordinator":
                await _worker!.KillAsync();
                _worker.Dispose();
                var restarted = Stopwatch.StartNew();
                _worker = await StartWorkerAsync(recoverOnly: false);
                Record(new Fault(kind, "worker", restarted.ElapsedMilliseconds));
                break;
            case "consumer":
                await _consumer!.KillAsync();
                _consumer.Dispose();
                var again = Stopwatch.StartNew();
                _consumer = await StartConsumerAsync();
                Record(new Fault(kind, "consumer", again.ElapsedMilliseconds));
                break;
            case "postgres":
                var server = postgres[_random.Next(postgres.Count)];
                await server.RestartImmediateAsync(cancellationToken);
                Record(new Fault(kind, server.ToString(), null));
                break;
            case "broker":
                await rabbitMq!.StopAsync(cancellationToken);
                await Task.Delay(TimeSpan.FromMilliseconds(500 + _random.Next(2_000)), cancellationToken);
                await rabbitMq.StartAgainAsync(cancellationToken);
                Record(new Fault(kind, rabbitMq.ToString(), null));
                break;
            default:
                throw new ArgumentException($"Unknown fault '{kind}'.", nameof(kind));
        }
    }

    private void Record(Fault fault)
    {
        _faults.Add(fault);
        history.OnFault(fault);
        progress.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  fault {_faults.Count,3}: {fault.Kind}{(fault.RecoveryMilliseconds is { } ms ? $" (restarted process ready in {ms} ms)" : string.Empty)}"));
    }

    private async Task<(IReadOnlyList<Check>, FinalState)> HealAndCheckAsync(CancellationToken cancellationToken)
    {
        progress.WriteLine("healing: the worker is killed, a recover-only coordinator finishes every decision, the consumer drains the queue");
        await _worker!.KillAsync();
        _worker.Dispose();
        var recovery = Stopwatch.StartNew();
        string? recovered = null;
        _worker = await StartWorkerAsync(recoverOnly: true, line => recovered = line.StartsWith("recovered", StringComparison.Ordinal) ? line : recovered);
        var finished = true;
        try
        {
            await _worker.WaitForExitAsync(settings.HealTimeout);
        }
        catch (TimeoutException)
        {
            finished = false;
        }

        var recoveryMs = recovery.ElapsedMilliseconds;
        var heuristics = recovered is null ? -1 : int.Parse(recovered.Split(' ')[3], CultureInfo.InvariantCulture);
        finished &= recovered is not null;

        // The consumer drains: the transfer queue empty and nothing consumed for a while.
        var (deadLettered, parked) = await DrainAsync(cancellationToken);
        await _consumer!.KillAsync();
        var final = new FinalState(finished, recoveryMs, Math.Max(heuristics, 0), deadLettered, parked);
        return (await Checks.RunAsync(settings, history, final, cancellationToken), final);
    }

    private async Task<(uint DeadLettered, uint Parked)> DrainAsync(CancellationToken cancellationToken)
    {
        var factory = new ConnectionFactory { Uri = settings.Amqp };
        var deadline = Stopwatch.StartNew();
        var lastConsumed = -1;
        var stableSince = Stopwatch.StartNew();
        while (deadline.Elapsed < settings.HealTimeout)
        {
            var consumed = (await Bank.ConsumedAsync(settings.Databases[0], cancellationToken)).Values.Sum();
            var waiting = await MessageCountAsync(factory, Bank.Queue, cancellationToken);
            if (consumed != lastConsumed)
            {
                lastConsumed = consumed;
                stableSince.Restart();
            }
            else if (waiting == 0 && stableSince.Elapsed > TimeSpan.FromSeconds(3))
            {
                break;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(500), cancellationToken);
        }

        return (await MessageCountAsync(factory, RabbitMqTopology.DeadLetterQueue, cancellationToken) ?? 0, await MessageCountAsync(factory, ParkingQueue, cancellationToken) ?? 0);
    }

    private static async Task<uint?> MessageCountAsync(ConnectionFactory factory, string queue, CancellationToken cancellationToken)
    {
        await using var connection = await factory.CreateConnectionAsync(cancellationToken);
        await using var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
        try
        {
            return (await channel.QueueDeclarePassiveAsync(queue, cancellationToken)).MessageCount;
        }
        catch (OperationInterruptedException)
        {
            return null; // the queue does not exist (nothing was ever parked)
        }
    }

    private async Task PrepareBrokerAsync(CancellationToken cancellationToken)
    {
        var factory = new ConnectionFactory { Uri = settings.Amqp };
        await using var connection = await factory.CreateConnectionAsync(cancellationToken);
        await using (var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken))
        {
            await RabbitMqTopology.DeclareConsumerQueueAsync(channel, Bank.Exchange, Bank.Queue, Bank.RoutingKey, cancellationToken: cancellationToken);
            await channel.QueuePurgeAsync(Bank.Queue, cancellationToken);
            await channel.QueuePurgeAsync(RabbitMqTopology.DeadLetterQueue, cancellationToken);
        }

        await using var parking = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
        try
        {
            await parking.QueuePurgeAsync(ParkingQueue, cancellationToken);
        }
        catch (OperationInterruptedException)
        {
            // Not declared yet: the publisher declares it when it connects.
        }
    }

    private async Task<ChildProcess> StartWorkerAsync(bool recoverOnly, Action<string>? onLine = null)
    {
        var incarnation = ++_incarnation;
        var arguments = new List<string> { "worker", "--log", Path.Combine(settings.WorkDirectory, "log"), "--amqp", settings.Amqp.ToString(),
            "--seed", settings.Seed.ToString(CultureInfo.InvariantCulture), "--incarnation", incarnation.ToString(CultureInfo.InvariantCulture),
            "--concurrency", settings.Concurrency.ToString(CultureInfo.InvariantCulture), "--accounts", settings.Accounts.ToString(CultureInfo.InvariantCulture),
            "--timeout", settings.TimeoutSeconds.ToString(CultureInfo.InvariantCulture) };
        foreach (var database in settings.Databases)
        {
            arguments.Add("--db");
            arguments.Add(database);
        }

        if (recoverOnly)
        {
            arguments.Add("--recover-only");
        }

        if (settings.LastResourceCommit is { } lastResourceCommit)
        {
            arguments.Add("--last-resource-commit");
            arguments.Add(lastResourceCommit ? "on" : "off");
        }

        var worker = ChildProcess.Start(arguments, Path.Combine(settings.WorkDirectory, "worker.log"), line =>
        {
            history.OnWorkerLine(incarnation, line);
            onLine?.Invoke(line);
        });
        await WaitReadyAsync(worker, "worker");
        return worker;
    }

    private async Task<ChildProcess> StartConsumerAsync()
    {
        var consumer = ChildProcess.Start(["consumer", "--db", settings.Databases[0], "--amqp", settings.Amqp.ToString()],
            Path.Combine(settings.WorkDirectory, "consumer.log"), history.OnConsumerLine);
        await WaitReadyAsync(consumer, "consumer");
        return consumer;
    }

    private async Task WaitReadyAsync(ChildProcess process, string what)
    {
        try
        {
            await process.Ready.WaitAsync(TimeSpan.FromSeconds(120));
        }
        catch (Exception ex) when (ex is TimeoutException or InvalidOperationException)
        {
            throw new InvalidOperationException($"The {what} process did not become ready: {ex.Message} (see {Path.Combine(settings.WorkDirectory, what + ".log")}).", ex);
        }
    }
}
