using TwoPC.Benchmarks;

// Runs one benchmark, chosen by the first argument:
//   dotnet run -c Release --project Tests/TwoPC.Benchmarks -- wal [options]
switch (args.FirstOrDefault())
{
    case "wal":
        return await WalBenchmark.RunAsync(args[1..]);

    case "log":
        return await LogBenchmark.RunAsync(args[1..]);

    case "coordinator":
        return await CoordinatorBenchmark.RunAsync(args[1..]);

    case "postgres":
        return await PostgresBenchmark.RunAsync(args[1..]);

    case "publish":
        return await PublishBenchmark.RunAsync(args[1..]);

    case "remote":
        return await RemoteBenchmark.RunAsync(args[1..]);

    case "recovery":
        return await RecoveryBenchmark.RunAsync(args[1..]);

    case "memory":
        return await MemoryBenchmark.RunAsync(args[1..]);

    case "takeover":
        return await TakeoverBenchmark.RunAsync(args[1..]);

    case "micro":
        return HotPathBenchmarks.Run(args[1..]);

    case "report":
        return await TwoPC.Benchmarks.Report.ReportCommand.RunAsync(args[1..]);

    default:
        Console.Error.WriteLine("""
            Usage: dotnet run -c Release --project Tests/TwoPC.Benchmarks -- <benchmark> [options]

            Benchmarks:
              wal    Durable commit decisions/s of the file WAL with group commit vs. one fsync per record.
                     Options: --duration <s> (3)  --warmup <s> (1)  --concurrency <n,n,...> (1,16,64,256)
                              --dir <data directory> (system temp)  --results <directory> (Tests/TwoPC.Benchmarks/results)
              log          Durable decisions/s of the shared PostgreSQL log (HA) vs. the file log at 1/16/64 committers (starts its own server).
                           Options: --duration <s> (3)  --concurrency <n,n,...> (1,16,64)  --results <directory>
              coordinator  Global transactions/s through the coordinator (see CoordinatorBenchmark.cs). Options: [seconds per cell]
              micro        BenchmarkDotNet micro-benchmarks of ids and WAL record encoding (results/micro.md).
              postgres     TwoPC vs raw 2PC vs two one-phase commits on two PostgreSQL databases (starts its own server). Options: [seconds per cell]
              remote       The standalone coordinator with two remote participant services vs the embedded coordinator vs plain HTTP calls. Options: [seconds per cell]
              publish      UPDATE + one RabbitMQ message: TwoPC vs raw confirmed publishing vs Wolverine's durable outbox (starts its own servers).
                           Options: [seconds per cell (3)] [concurrencies, e.g. 1,8,32]
              recovery     Time to resolve 10,000 in-doubt transactions (two PostgreSQL databases) after a SIGKILL (starts its own server).
                           Options: [runs (3)] [transactions (10000)]
              takeover     Seconds from a dead coordinator node's lease expiry until another node resolved its in-doubt branches
                           (two node processes on the shared PostgreSQL log, default lease settings). Options: [runs (3)]
              memory       Coordinator RSS and GC heap with 10,000 transactions in flight (no-op participants). Options: [transactions (10000)]
              report       Runs wal, coordinator, postgres, publish and remote, then writes results/README.md with charts (results/charts/*.svg).
                           Options: --seconds <per cell>  --only <wal,postgres,...>  --micro (adds the micro-benchmarks)
            """);
        return 2;
}
