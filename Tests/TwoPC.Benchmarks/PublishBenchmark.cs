using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Npgsql;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using TwoPC.Benchmarks.Report;
using TwoPC.Benchmarks.Wolverine;
using TwoPC.Participants.PostgreSql;
using TwoPC.Participants.RabbitMq;
using TwoPC.Protocol;
using TwoPC.TestServers;
using TwoPC.Transactions;
using TwoPC.Wal;

namespace TwoPC.Benchmarks;

/// <summary>
/// Transactional publish: per operation one UPDATE of a random row in PostgreSQL plus one small
/// persistent message to a durable exchange bound to a quorum queue. TwoPC (coordinator + durable WAL
/// + PostgreSQL branch + RabbitMQ branch) against, in the same run on the same private servers: raw
/// confirmed publishing after a one-phase COMMIT (not atomic), and Wolverine's durable outbox (the
/// peer), once with its default RabbitMQ channels (no publisher confirms) and once with publisher
/// confirms turned on.
/// </summary>
public static class PublishBenchmark
{
    private const int Rows = 10_000;
    private const string Exchange = "bench.publish";
    private const string Queue = "bench.publish.q";
    private const string RoutingKey = "bench";
    private const string WolverineSchema = "wolverine";
    private const string WolverineConfirmsSchema = "wolverine_confirms";
    private static readonly JsonSerializerOptions Json = new() { PropertyNameCaseInsensitive = true };

    public static async Task<int> RunAsync(string[] args, ReportPoints? report = null)
    {
        var seconds = args.Length > 0 ? double.Parse(args[0], CultureInfo.InvariantCulture) : 3;
        int[] concurrencies = args.Length > 1 ? [.. args[1].Split(',').Select(c => int.Parse(c, CultureInfo.InvariantCulture))] : [1, 8, 32];
        var duration = TimeSpan.FromSeconds(seconds);
        var total = Stopwatch.StartNew();

        var postgresStart = PostgresServer.StartAsync(new PostgresServerOptions { MaxPreparedTransactions = 200, MaxConnections = 400 });
        var rabbitStart = RabbitMqServer.StartAsync();
        await using var postgres = await postgresStart;
        await using var rabbit = await rabbitStart;
        var connectionString = await postgres.CreateDatabaseAsync("bench_publish");
        await using var dataSource = NpgsqlDataSource.Create(connectionString + ";Maximum Pool Size=150");
        await using (var setup = dataSource.CreateCommand($"CREATE TABLE items (id int PRIMARY KEY, value bigint NOT NULL); INSERT INTO items SELECT g, 0 FROM generate_series(1, {Rows}) g"))
        {
            await setup.ExecuteNonQueryAsync();
        }

        var factory = new ConnectionFactory { Uri = rabbit.AmqpUri };
        await using var connection = await factory.CreateConnectionAsync("publish-bench");
        await using (var channel = await connection.CreateChannelAsync())
        {
            await RabbitMqTopology.DeclareConsumerQueueAsync(channel, Exchange, Queue, RoutingKey);
        }

        // One consumer drains the queue for the whole run (the same load for every variant) and records
        // when each message arrived and how long after its operation started.
        var deliveries = new Deliveries();
        await using var consumerChannel = await connection.CreateChannelAsync();
        await consumerChannel.BasicQosAsync(0, 500, false);
        var consumer = new AsyncEventingBasicConsumer(consumerChannel);
        consumer.ReceivedAsync += async (_, delivery) =>
        {
            var now = Stopwatch.GetTimestamp();
            var message = JsonSerializer.Deserialize<PublishBenchMessage>(delivery.Body.Span, Json)!;
            deliveries.Add(now, Stopwatch.GetElapsedTime(message.StartedAt, now).TotalMilliseconds);
            await consumerChannel.BasicAckAsync(delivery.DeliveryTag, multiple: false);
        };
        await consumerChannel.BasicConsumeAsync(Queue, autoAck: false, consumer);

        // TwoPC.
        using var postgresRm = await PostgresResourceManager.CreateAsync("bench-pg", dataSource);
        var publisherOptions = new RabbitMqPublisherOptions { Channels = concurrencies.Max() };
        await using var rabbitRm = await RabbitMqResourceManager.CreateAsync("bench-mq", new ConnectionFactory { Uri = rabbit.AmqpUri }, publisherOptions);
        var logDirectory = Directory.CreateTempSubdirectory("twopc-publish-bench-");
        await using var coordinator = new TransactionCoordinator(new TransactionCoordinatorOptions { NodeId = "publish-bench", LastResourceCommit = false },
            new FileTransactionLog(new FileTransactionLogOptions { Directory = logDirectory.FullName }), [postgresRm, rabbitRm]);
        await coordinator.StartAsync();

        // TwoPC with the last-resource commit: the same resource managers under a second coordinator (its own node id and
        // log); the PostgreSQL branch decides and the staged message rides in its commit marker (no WAL force).
        var lrcLogDirectory = Directory.CreateTempSubdirectory("twopc-publish-bench-lrc-");
        await using var lrcCoordinator = new TransactionCoordinator(new TransactionCoordinatorOptions { NodeId = "publish-bench-lrc", LastResourceCommit = true },
            new FileTransactionLog(new FileTransactionLogOptions { Directory = lrcLogDirectory.FullName }), [postgresRm, rabbitRm]);
        await lrcCoordinator.StartAsync();

        // Raw confirmed publishing: a pool of confirm-tracking channels, one per concurrent worker.
        var channels = new ConcurrentBag<IChannel>();
        var confirmOptions = new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true);
        for (var i = 0; i < concurrencies.Max(); i++)
        {
            channels.Add(await connection.CreateChannelAsync(confirmOptions));
        }

        // Wolverine, as shipped (no publisher confirms) and with publisher confirms; each in its own schema.
        await using var wolverine = await WolverineOutbox.StartAsync(connectionString, rabbit.AmqpUri, Exchange, RoutingKey, WolverineSchema, publisherConfirms: false);
        await using var wolverineConfirms = await WolverineOutbox.StartAsync(connectionString, rabbit.AmqpUri, Exchange, RoutingKey, WolverineConfirmsSchema, publisherConfirms: true);

        long sequence = 0;
        Func<TransactionCoordinator, Func<Task>> viaTwoPC = coordinator => async () =>
        {
            var id = Random.Shared.Next(1, Rows + 1);
            var body = Body(id);
            var tx = coordinator.Begin();
            var pg = await postgresRm.EnlistAsync(tx);
            var mq = rabbitRm.Enlist(tx);
            await UpdateAsync(pg.Connection, pg.Transaction, id);
            mq.Publish(Exchange, RoutingKey, body);
            var outcome = await tx.CommitAsync();
            if (outcome.Kind != OutcomeKind.Committed)
            {
                throw new InvalidOperationException($"benchmark transaction ended {outcome.Kind}: {outcome.Reason}");
            }

            deliveries.Published();
        };
        Func<Task> raw = async () =>
        {
            var id = Random.Shared.Next(1, Rows + 1);
            var body = Body(id);
            await using (var c = await dataSource.OpenConnectionAsync())
            await using (var t = await c.BeginTransactionAsync())
            {
                await UpdateAsync(c, t, id);
                await t.CommitAsync();
            }

            if (!channels.TryTake(out var channel))
            {
                channel = await connection.CreateChannelAsync(confirmOptions);
            }

            try
            {
                var properties = new BasicProperties { Persistent = true, MessageId = "raw-" + Interlocked.Increment(ref sequence).ToString(CultureInfo.InvariantCulture) };
                await channel.BasicPublishAsync(Exchange, RoutingKey, mandatory: true, properties, body);
            }
            finally
            {
                channels.Add(channel);
            }

            deliveries.Published();
        };
        Func<WolverineOutbox, Func<Task>> viaWolverine = outbox => async () =>
        {
            var id = Random.Shared.Next(1, Rows + 1);
            await outbox.ExecuteAsync(dataSource, new PublishBenchMessage(id, Stopwatch.GetTimestamp()), (c, t) => UpdateAsync(c, t, id));
            deliveries.Published();
        };

        Variant[] variants =
        [
            new("TwoPC", viaTwoPC(coordinator), EndToEnd: false),
            new("raw confirmed publish", raw, EndToEnd: false),
            new("Wolverine outbox", viaWolverine(wolverine), EndToEnd: true),
            new("Wolverine outbox + confirms", viaWolverine(wolverineConfirms), EndToEnd: true),
            new("TwoPC-LRC", viaTwoPC(lrcCoordinator), EndToEnd: false),
        ];

        // Warm every variant up (pools, JIT, Wolverine's sending agents, the quorum queue) before any cell counts.
        foreach (var variant in variants)
        {
            await MeasureAsync(variant, 32, TimeSpan.FromSeconds(2), deliveries);
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"servers started and variants warmed up after {total.Elapsed.TotalSeconds:F0} s"));
        var rows = new List<(int Concurrency, Cell[] Cells)>();
        foreach (var concurrency in concurrencies)
        {
            // Two rounds in opposite orders, averaged, so no variant always runs first or last.
            var first = new Cell[variants.Length];
            var second = new Cell[variants.Length];
            for (var i = 0; i < variants.Length; i++)
            {
                first[i] = await MeasureAsync(variants[i], concurrency, duration, deliveries);
            }

            for (var i = variants.Length - 1; i >= 0; i--)
            {
                second[i] = await MeasureAsync(variants[i], concurrency, duration, deliveries);
            }

            var cells = first.Zip(second, Cell.Mean).ToArray();
            rows.Add((concurrency, cells));
            for (var i = 0; i < variants.Length; i++)
            {
                // The rate each variant is judged by; latency as the caller waits (TwoPC, raw) or to delivery (Wolverine).
                var (p50, p99) = variants[i].EndToEnd ? (cells[i].EndToEndP50, cells[i].EndToEndP99) : (cells[i].Load.P50, cells[i].Load.P99);
                report?.Add("publish", variants[i].Name, concurrency, cells[i].Counted, p50, p99);
            }
            Console.WriteLine("c=" + concurrency.ToString(CultureInfo.InvariantCulture) + ": "
                + string.Join(", ", variants.Select((v, i) => string.Create(CultureInfo.InvariantCulture, $"{v.Name} {cells[i].Counted:N0}/s"))));
        }

        var table = new StringBuilder();
        table.AppendLine("| concurrent | TwoPC ops/s | p50 ms | p99 ms | TwoPC-LRC ops/s | p50 ms | p99 ms | raw confirmed ops/s | p50 ms | p99 ms | Wolverine delivered/s | e2e p50 ms | e2e p99 ms | Wolverine + confirms delivered/s | e2e p50 ms | e2e p99 ms | TwoPC ÷ raw | TwoPC ÷ Wolverine | TwoPC ÷ Wolverine + confirms | TwoPC-LRC ÷ Wolverine | TwoPC-LRC ÷ Wolverine + confirms |");
        table.AppendLine("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var (c, cells) in rows)
        {
            var (t, r, w, wc, l) = (cells[0], cells[1], cells[2], cells[3], cells[4]);
            table.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {c} | {t.Counted:N0} | {t.Load.P50:F2} | {t.Load.P99:F2} | {l.Counted:N0} | {l.Load.P50:F2} | {l.Load.P99:F2} | {r.Counted:N0} | {r.Load.P50:F2} | {r.Load.P99:F2} | {w.Counted:N0} | {w.EndToEndP50:F2} | {w.EndToEndP99:F2} | {wc.Counted:N0} | {wc.EndToEndP50:F2} | {wc.EndToEndP99:F2} | {t.Counted / r.Counted:F2} | {t.Counted / w.Counted:F2} | {t.Counted / wc.Counted:F2} | {l.Counted / w.Counted:F2} | {l.Counted / wc.Counted:F2} |"));
        }

        table.AppendLine();
        table.AppendLine("Every variant seen from the consumer (messages delivered per second of the measured window, and end-to-end latency from the start of the operation to delivery), and what each caller saw (operations returned per second and their latency; for Wolverine that is the outbox commit plus flush, not the publish). Backlog: messages committed but not yet delivered when the cell ended.");
        table.AppendLine();
        table.AppendLine("| concurrent | variant | delivered/s | e2e p50 ms | e2e p99 ms | returned ops/s | p50 ms | p99 ms | backlog at end |");
        table.AppendLine("|---:|---|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var (c, cells) in rows)
        {
            for (var i = 0; i < variants.Length; i++)
            {
                var x = cells[i];
                table.AppendLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {c} | {variants[i].Name} | {x.Delivered:N0} | {x.EndToEndP50:F2} | {x.EndToEndP99:F2} | {x.Load.PerSecond:N0} | {x.Load.P50:F2} | {x.Load.P99:F2} | {x.Backlog:N0} |"));
            }
        }

        Console.WriteLine();
        Console.WriteLine(table);
        var target = rows.FirstOrDefault(r => r.Concurrency == 32);
        if (target.Cells is null)
        {
            target = rows[^1];
        }

        var (tt, rr, ww, wwc, ll) = (target.Cells[0], target.Cells[1], target.Cells[2], target.Cells[3], target.Cells[4]);
        var ratio = tt.Counted / ww.Counted;
        var lrcRatio = ll.Counted / ww.Counted;
        var verdict = string.Create(CultureInfo.InvariantCulture,
            $"With the last-resource commit (TwoPC-LRC: the PostgreSQL branch commits in one phase with a marker that carries the staged message, no PREPARE and no WAL force, then the confirmed publish) TwoPC completes {ll.Counted:N0} atomic publishes/s at {target.Concurrency} concurrent: {lrcRatio:F2} × Wolverine's outbox as shipped (target ≥ 1.5 ×: {(lrcRatio >= 1.5 ? "met" : "NOT met")}) and {ll.Counted / wwc.Counted:F2} × Wolverine with publisher confirms. ") + string.Create(CultureInfo.InvariantCulture,
            $"At {target.Concurrency} concurrent TwoPC completes {tt.Counted:N0} atomic publishes/s: {ratio:F2} × Wolverine's durable outbox as shipped ({ww.Counted:N0} delivered/s; target ≥ 1.5 ×: {(ratio >= 1.5 ? "met" : "NOT met")}), {tt.Counted / wwc.Counted:F2} × Wolverine with publisher confirms ({wwc.Counted:N0}/s), and {tt.Counted / rr.Counted:F2} × raw, non-atomic confirmed publishing ({rr.Counted:N0}/s).");
        verdict += "\n\nWhat is counted: TwoPC — CommitAsync returned Committed, i.e. the PostgreSQL branch committed (COMMIT PREPARED) and the broker confirmed the message (mandatory, persistent); raw — COMMIT returned and BasicPublishAsync returned after the broker's confirm. Wolverine — messages delivered to the consumer of the queue during the measured window, because its API only tells the caller that the envelope was stored in the outbox: FlushOutgoingMessagesAsync hands it to a background sending agent and returns without waiting for the broker. As shipped, Wolverine's RabbitMQ channels have publisher confirms off (WolverineRabbitMqChannelOptions.PublisherConfirmationsEnabled = false), so its sending agent deletes the outbox row once the publish has been written to the socket, without the broker's ack; the second Wolverine column turns confirms (with tracking) on through ConfigureChannelCreation, so its sender awaits each ack before the row is deleted. TwoPC's and raw's p50/p99 are what the caller waits for; Wolverine's e2e latency runs to delivery at the consumer, which is later than a confirm.";
        verdict += "\n\nWhat TwoPC pays per operation that the outbox does not: by default (TwoPC-LRC) the PostgreSQL branch commits in one step with its marker (INSERT + COMMIT in one round trip, as the outbox commits its envelope row), and then the caller waits for the broker's confirm (the quorum queue's write) before CommitAsync returns, where the outbox returns after its COMMIT and publishes later — without confirms, as shipped. With LastResourceCommit = false (TwoPC): PREPARE TRANSACTION and COMMIT PREPARED instead of one COMMIT, plus one forced decision record in the coordinator's WAL. The RabbitMQ branch's prepare (an exchange check) costs nothing per operation: an exchange seen is trusted for RabbitMqPublisherOptions.ExchangeCheckInterval (30 s). The outbox pays one INSERT in the business transaction and, later, a batched DELETE.";
        Console.WriteLine(verdict);
        ResultsFile.Write("publish.md", "Transactional publish: one PostgreSQL UPDATE + one RabbitMQ message",
            "dotnet run -c Release --project Tests/TwoPC.Benchmarks -- publish" + (args.Length > 0 ? " " + string.Join(' ', args) : string.Empty),
            $"""
            Private PostgreSQL {postgres.Version} (fsync on) and RabbitMQ {rabbit.Version} on loopback, started by Testing/TwoPC.TestServers. Each operation updates one random row of {Rows:N0} and publishes one small persistent JSON message (about 40 bytes) to a durable topic exchange bound to a quorum queue; one consumer (prefetch 500, manual ack) drains the queue for the whole run, the same for every variant.

            - **TwoPC**: coordinator with a durable FileTransactionLog and TransactionCoordinatorOptions.LastResourceCommit = false; PostgresResourceManager branch (the UPDATE) and RabbitMqResourceManager branch (the message staged, {publisherOptions.Channels} confirm channels); CommitAsync prepares both (PREPARE TRANSACTION; exchange check), forces the decision with the message in it, then COMMIT PREPARED and a mandatory, persistent publish with its confirm awaited.
            - **TwoPC-LRC**: the same with the default, LastResourceCommit = true: the RabbitMQ branch is prepared (the exchange check), then the PostgreSQL branch commits in one phase with an INSERT of its commit marker (the staged message in its payload) in the same batch — the decision, no WAL force — then the confirmed publish; finished markers are deleted in batches in the background.
            - **raw confirmed publish** (not atomic): the UPDATE in a one-phase transaction, COMMIT, then BasicPublishAsync (mandatory, persistent) on a channel with publisher confirms and tracking, awaited; one channel per worker.
            - **Wolverine outbox** (WolverineFx 6.62.0 with WolverineFx.Postgresql and WolverineFx.RabbitMQ, solo durability mode, PostgreSQL message persistence in the same database, durable outbox on the sending endpoint): per operation a MessageContext enlisted with a DatabaseEnvelopeTransaction on the caller's NpgsqlTransaction, the UPDATE, SendAsync (the envelope row is inserted in the same transaction), COMMIT, FlushOutgoingMessagesAsync. RabbitMQ channels as shipped: no publisher confirms.
            - **Wolverine outbox + confirms**: the same, in its own schema, with publisher confirms and confirm tracking enabled on Wolverine's channels.

            After a 2 s warm-up of every variant at 32 concurrent, each cell runs {seconds} s (after the harness's own 1 s warm-up), twice in opposite variant orders, averaged; after each cell the benchmark waits until every committed message has been delivered, so no backlog spills into the next cell. p50/p99 for TwoPC and raw are per operation as the caller sees it (the message is confirmed by then); for Wolverine the table gives end-to-end latency (operation start → delivery at the consumer), since its call returns before the publish.
            """,
            table.ToString(), verdict, dataDirectory: postgres.DataDirectory);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"total {total.Elapsed.TotalSeconds:F0} s"));
        while (channels.TryTake(out var ch))
        {
            await ch.DisposeAsync();
        }

        logDirectory.Delete(recursive: true);
        lrcLogDirectory.Delete(recursive: true);
        return 0;
    }

    private static async Task<Cell> MeasureAsync(Variant variant, int concurrency, TimeSpan duration, Deliveries deliveries)
    {
        var load = await Load.RunAsync(concurrency, duration, variant.Operation);
        var end = Stopwatch.GetTimestamp();
        var window = load.Operations / load.PerSecond;
        var start = end - (long)(window * Stopwatch.Frequency);
        var backlog = deliveries.Backlog;

        // Let everything committed reach the consumer before the next cell starts.
        var drain = Stopwatch.StartNew();
        while (deliveries.Backlog > 0)
        {
            if (drain.Elapsed > TimeSpan.FromSeconds(60))
            {
                throw new TimeoutException($"{variant.Name}: {deliveries.Backlog} committed messages were not delivered within 60 s");
            }

            await Task.Delay(20);
        }

        var (count, p50, p99) = deliveries.TakeWindow(start, end);
        var delivered = count / window;
        return new Cell(variant.EndToEnd ? delivered : load.PerSecond, load, delivered, p50, p99, backlog);
    }

    private static ReadOnlyMemory<byte> Body(int id) => JsonSerializer.SerializeToUtf8Bytes(new PublishBenchMessage(id, Stopwatch.GetTimestamp()));

    private static async Task UpdateAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, int id)
    {
        await using var command = new NpgsqlCommand("UPDATE items SET value = value + 1 WHERE id = $1", connection, transaction);
        command.Parameters.AddWithValue(id);
        await command.ExecuteNonQueryAsync();
    }

    private sealed record Variant(string Name, Func<Task> Operation, bool EndToEnd);

    /// <summary>One cell: <see cref="Counted"/> is the rate the variant is judged by (see the verdict).</summary>
    private sealed record Cell(double Counted, Measurement Load, double Delivered, double EndToEndP50, double EndToEndP99, long Backlog)
    {
        public static Cell Mean(Cell x, Cell y) => new(
            (x.Counted + y.Counted) / 2,
            new Measurement((x.Load.PerSecond + y.Load.PerSecond) / 2, (x.Load.P50 + y.Load.P50) / 2, (x.Load.P99 + y.Load.P99) / 2, x.Load.Operations + y.Load.Operations),
            (x.Delivered + y.Delivered) / 2,
            (x.EndToEndP50 + y.EndToEndP50) / 2,
            (x.EndToEndP99 + y.EndToEndP99) / 2,
            (x.Backlog + y.Backlog) / 2);
    }

    /// <summary>What the consumer saw: arrival time and end-to-end latency of each message.</summary>
    private sealed class Deliveries
    {
        private readonly Lock _gate = new();
        private readonly List<(long At, double LatencyMs)> _seen = new(1_000_000);
        private long _published;
        private long _delivered;

        public long Backlog => Interlocked.Read(ref _published) - Interlocked.Read(ref _delivered);

        public void Published() => Interlocked.Increment(ref _published);

        public void Add(long at, double latencyMs)
        {
            lock (_gate)
            {
                _seen.Add((at, latencyMs));
            }

            Interlocked.Increment(ref _delivered);
        }

        /// <summary>Deliveries inside [start, end] with their latency percentiles; forgets everything seen so far.</summary>
        public (long Count, double P50, double P99) TakeWindow(long start, long end)
        {
            double[] latencies;
            lock (_gate)
            {
                latencies = [.. _seen.Where(s => s.At >= start && s.At <= end).Select(s => s.LatencyMs)];
                _seen.Clear();
            }

            Array.Sort(latencies);
            return (latencies.Length, Percentile(latencies, 0.50), Percentile(latencies, 0.99));
        }

        private static double Percentile(double[] sorted, double p) => sorted.Length == 0 ? 0 : sorted[Math.Min(sorted.Length - 1, (int)(p * sorted.Length))];
    }
}
