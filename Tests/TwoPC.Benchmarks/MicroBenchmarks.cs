using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using TwoPC.Durability;
using TwoPC.Transactions;
using TwoPC.Wal;

namespace TwoPC.Benchmarks;

/// <summary>
/// BenchmarkDotNet micro-benchmarks of the per-transaction hot path that is not I/O: creating and
/// formatting XIDs, parsing untrusted ids, and encoding/decoding a commit-decision record.
/// <c>dotnet run -c Release --project Tests/TwoPC.Benchmarks -- micro</c>; the GitHub-markdown
/// report is copied to <c>results/micro.md</c>.
/// </summary>
[MemoryDiagnoser]
public class HotPathBenchmarks
{
    private readonly GlobalTransactionId _id = new(NodeId.Parse("orders-1"), 7, 123_456);
    private readonly byte[] _buffer = new byte[4096];
    private CommitDecision _decision = null!;
    private string _xidText = null!;
    private string _gtridText = null!;
    private int _encodedLength;

    [GlobalSetup]
    public void Setup()
    {
        _decision = new CommitDecision(_id, DateTimeOffset.UnixEpoch, [
            new LoggedBranch("orders", Xid.ForBranch(_id, 1), new byte[16]),
            new LoggedBranch("payments", Xid.ForBranch(_id, 2), new byte[16])]);
        _xidText = Xid.ForBranch(_id, 2).ToString();
        _gtridText = _id.ToString();
        _encodedLength = TransactionRecordCodec.CommitDecisionEncoder(_decision, _buffer);
    }

    [Benchmark]
    public string CreateAndFormatXid() => Xid.ForBranch(_id, 2).ToString();

    [Benchmark]
    public Xid ParseXid() => Xid.Parse(_xidText);

    [Benchmark]
    public GlobalTransactionId ParseGlobalId() => GlobalTransactionId.Parse(_gtridText);

    [Benchmark]
    public int EncodeDecision() => TransactionRecordCodec.CommitDecisionEncoder(_decision, _buffer);

    [Benchmark]
    public CommitDecision DecodeDecision() => TransactionRecordCodec.DecodeCommitDecision(_buffer.AsSpan(0, _encodedLength));

    public static int Run(string[] args)
    {
        // In-process: no second build of the project, which keeps the run short on a 2-core machine.
        var config = ManualConfig.Create(DefaultConfig.Instance)
            .AddJob(Job.ShortRun.WithToolchain(InProcessEmitToolchain.Instance));
        var summaries = BenchmarkSwitcher.FromTypes([typeof(HotPathBenchmarks)]).Run(args.Length > 0 ? args : ["--filter", "*"], config);
        foreach (var summary in summaries)
        {
            var report = Directory.EnumerateFiles(summary.ResultsDirectoryPath, "*-report-github.md").FirstOrDefault();
            if (report is not null)
            {
                var target = Path.Combine(ResultsFile.DefaultResultsDirectory(), "micro.md");
                File.WriteAllText(target, "# Micro-benchmarks (BenchmarkDotNet): the non-I/O hot path\n\nCommand: `dotnet run -c Release --project Tests/TwoPC.Benchmarks -- micro`\n\n" + File.ReadAllText(report));
                Console.WriteLine($"Wrote {target}");
            }
        }

        return summaries.Any(s => s.HasCriticalValidationErrors) ? 1 : 0;
    }
}
