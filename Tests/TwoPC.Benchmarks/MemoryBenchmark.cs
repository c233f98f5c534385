using System.Globalization;
using System.Text;
using TwoPC.Participants;
using TwoPC.Protocol;
using TwoPC.Transactions;
using TwoPC.Wal;

namespace TwoPC.Benchmarks;

/// <summary>
/// The coordinator process's memory with N transactions in flight: resident set size (<c>VmRSS</c> of
/// <c>/proc/self/status</c>) and the GC heap after a full collection, before and with them in flight.
/// </summary>
/// <remarks>
/// The participants do nothing (a 10,000-connection pool would measure Npgsql, not the coordinator), so the figure is
/// the coordinator's own: its transaction table, the global transactions and their enlisted branches, and, in the
/// second state, the commits waiting in phase 1 (each branch's prepare waits on a gate until all are waiting).
/// </remarks>
public static class MemoryBenchmark
{
    private const long GoalBytes = 150L * 1024 * 1024;

    public static async Task<int> RunAsync(string[] args)
    {
        var transactions = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 10_000;
        var logDirectory = Directory.CreateTempSubdirectory("twopc-memory-bench-");
        var gate = new Gate();
        var rms = new[] { new GatedResourceManager("rm-a", gate), new GatedResourceManager("rm-b", gate) };
        await using var coordinator = new TransactionCoordinator(
            new TransactionCoordinatorOptions { NodeId = "memory-bench", DefaultTimeout = TimeSpan.FromMinutes(10), MaxTimeout = TimeSpan.FromMinutes(10) },
            new FileTransactionLog(new FileTransactionLogOptions { Directory = logDirectory.FullName }),
            rms);
        await coordinator.StartAsync();

        // Warm-up: JIT, the log's buffers, thread-pool threads; then the baseline.
        gate.Open();
        for (var i = 0; i < 2_000; i++)
        {
            var tx = coordinator.Begin();
            tx.Enlist(rms[0].CreateBranch);
            tx.Enlist(rms[1].CreateBranch);
            await tx.CommitAsync();
        }

        gate.Close();
        var baseline = Sample.Take("started, 2,000 transactions committed (baseline)");

        var inFlight = new List<GlobalTransaction>(transactions);
        for (var i = 0; i < transactions; i++)
        {
            var tx = coordinator.Begin();
            tx.Enlist(rms[0].CreateBranch);
            tx.Enlist(rms[1].CreateBranch);
            inFlight.Add(tx);
        }

        var begun = Sample.Take($"{transactions:N0} begun, 2 branches enlisted each");

        var commits = inFlight.Select(tx => tx.CommitAsync()).ToArray();
        while (Volatile.Read(ref gate.Waiting) < 2 * transactions)
        {
            await Task.Delay(10);
        }

        var committing = Sample.Take($"{transactions:N0} committing (every branch's prepare waiting)");
        gate.Open();
        var outcomes = await Task.WhenAll(commits);
        var committed = outcomes.Count(o => o.Kind == OutcomeKind.Committed);
        if (committed != transactions)
        {
            throw new InvalidOperationException($"{committed} of {transactions} committed");
        }

        inFlight.Clear();
        var after = Sample.Take($"all {transactions:N0} committed");
        await coordinator.DisposeAsync();
        logDirectory.Delete(recursive: true);

        var samples = new[] { baseline, begun, committing, after };
        var table = new StringBuilder();
        table.Append("| state | RSS (VmRSS) | GC heap after full GC | Δ RSS vs baseline | Δ GC heap vs baseline |\n|---|---|---|---|---|\n");
        foreach (var s in samples)
        {
            table.Append(CultureInfo.InvariantCulture,
                $"| {s.State} | {Mb(s.Rss)} | {Mb(s.Heap)} | {Mb(s.Rss - baseline.Rss)} | {Mb(s.Heap - baseline.Heap)} |\n");
        }

        // The verdict takes the process's peak (VmHWM), not only the samples: the conservative reading.
        var peak = samples.Max(s => s.PeakRss);
        table.Append(CultureInfo.InvariantCulture, $"\nPeak RSS of the process over the run (VmHWM): {Mb(peak)}. Per transaction in flight (2 branches, committing): {(committing.Heap - baseline.Heap) / (double)transactions:N0} bytes of GC heap.\n");
        var met = peak <= GoalBytes;
        Console.WriteLine(table);
        ResultsFile.Write(
            "memory.md",
            "Coordinator memory with transactions in flight",
            $"dotnet run -c Release --project Tests/TwoPC.Benchmarks -- memory {transactions}",
            $"""
            One process: a coordinator (file WAL) with two no-op participants (a real 10,000-connection pool would measure the
            database driver, not the coordinator). Baseline after start and 2,000 committed transactions; then {transactions:N0}
            transactions begun with two branches enlisted each; then all of them inside `CommitAsync` with every branch's prepare
            waiting on a gate; then all committed. Each sample follows a full blocking GC; RSS is `VmRSS` of `/proc/self/status`
            (workstation, non-concurrent GC, as the benchmark project is configured).
            """,
            table.ToString(),
            met
                ? $"Goal met: peak RSS {Mb(peak)} ≤ 150 MB with {transactions:N0} transactions in flight."
                : $"Goal NOT met: peak RSS {Mb(peak)} > 150 MB with {transactions:N0} transactions in flight.");
        return 0;
    }

    private static string Mb(long bytes) => string.Create(CultureInfo.InvariantCulture, $"{bytes / (1024.0 * 1024.0):0.0} MB");

    private sealed record Sample(string State, long Rss, long PeakRss, long Heap)
    {
        public static Sample Take(string state)
        {
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
            GC.WaitForPendingFinalizers();
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
            var heap = GC.GetTotalMemory(forceFullCollection: false);
            var status = File.ReadAllLines("/proc/self/status");
            long Kb(string name) => long.Parse(status.First(l => l.StartsWith(name, StringComparison.Ordinal))[name.Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
            var sample = new Sample(state, Kb("VmRSS:"), Kb("VmHWM:"), heap);
            Console.WriteLine($"{state}: RSS {Mb(sample.Rss)}, GC heap {Mb(sample.Heap)}");
            return sample;
        }
    }

    private sealed class Gate
    {
        private TaskCompletionSource _open = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public int Waiting;

        public Task WhenOpen => Volatile.Read(ref _open).Task;

        public void Open() => Volatile.Read(ref _open).TrySetResult();

        public void Close() => Volatile.Write(ref _open, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
    }

    /// <summary>A participant that does nothing and votes yes, once its gate is open.</summary>
    private sealed class GatedResourceManager(string name, Gate gate) : IResourceManager
    {
        public string Name => name;

        public bool CommitsAtomically => true;

        public ITransactionBranch CreateBranch(Xid xid) => new Branch(this, gate);

        public ValueTask<BranchOutcome> CommitAsync(Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken) => ValueTask.FromResult(BranchOutcome.Committed);

        public ValueTask<BranchOutcome> RollbackAsync(Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken) => ValueTask.FromResult(BranchOutcome.RolledBack);

        public ValueTask<IReadOnlyCollection<InDoubtBranch>> RecoverAsync(CancellationToken cancellationToken) => ValueTask.FromResult<IReadOnlyCollection<InDoubtBranch>>([]);

        public ValueTask ForgetAsync(Xid xid, CancellationToken cancellationToken) => ValueTask.CompletedTask;

        private sealed class Branch(GatedResourceManager rm, Gate gate) : ITransactionBranch
        {
            private static readonly Vote YesVote = Vote.Yes();

            public IResourceManager ResourceManager => rm;

            public async ValueTask<Vote> PrepareAsync(CancellationToken cancellationToken)
            {
                var open = gate.WhenOpen;
                if (!open.IsCompleted)
                {
                    Interlocked.Increment(ref gate.Waiting);
                    await open;
                }

                return YesVote;
            }

            public ValueTask<BranchOutcome> CommitOnePhaseAsync(CancellationToken cancellationToken) => ValueTask.FromResult(BranchOutcome.Committed);

            public ValueTask<BranchOutcome> RollbackAsync(CancellationToken cancellationToken) => ValueTask.FromResult(BranchOutcome.RolledBack);
        }
    }
}
