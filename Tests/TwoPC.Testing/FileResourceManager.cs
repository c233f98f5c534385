using System.Text;
using TwoPC.Participants;
using TwoPC.Transactions;

namespace TwoPC.Testing;

/// <summary>
/// A durable, file-backed test participant: each branch is one file in <see cref="Directory"/> whose
/// extension is its state (<c>.prepared</c>, <c>.committed</c>, <c>.rolledback</c>); state changes are
/// fsynced writes and atomic renames, so they survive the SIGKILL of any process using it. The crash
/// tests read the files to check atomicity.
/// </summary>
public sealed class FileResourceManager : IResourceManager
{
    private readonly Lock _gate = new();

    /// <summary>Creates the participant over <paramref name="directory"/> (created if missing).</summary>
    public FileResourceManager(string name, string directory)
    {
        Name = name;
        Directory = directory;
        System.IO.Directory.CreateDirectory(directory);
    }

    /// <inheritdoc />
    public string Name { get; }

    /// <summary>Whether this resource declares its commit atomic (default <see langword="true"/>: a commit is one
    /// atomic rename); <see langword="false"/> makes the coordinator prepare and log even a lone branch.</summary>
    public bool CommitsAtomically { get; set; } = true;

    /// <summary>Where the branch files live.</summary>
    public string Directory { get; }

    /// <summary>When set, prepare votes no for the XIDs it matches.</summary>
    public Func<Xid, bool>? VoteNo { get; set; }

    /// <summary>Creates a branch that will write <paramref name="value"/> when it commits.</summary>
    public ITransactionBranch CreateBranch(Xid xid, string value) => new Branch(this, xid, value);

    /// <summary>Creates a branch that reads only: it votes read-only (or no, when <see cref="VoteNo"/> says so) and writes nothing.</summary>
    public ITransactionBranch CreateReadOnlyBranch(Xid xid) => new ReadOnlyBranch(this, xid);

    /// <summary>Reads the state of every branch in <paramref name="directory"/>.</summary>
    public static IReadOnlyDictionary<string, TestBranchState> ReadStates(string directory)
    {
        var states = new Dictionary<string, TestBranchState>(StringComparer.Ordinal);
        if (!System.IO.Directory.Exists(directory))
        {
            return states;
        }

        foreach (var path in System.IO.Directory.EnumerateFiles(directory))
        {
            var state = Path.GetExtension(path) switch
            {
                ".prepared" => TestBranchState.Prepared,
                ".committed" => TestBranchState.Committed,
                ".rolledback" => TestBranchState.RolledBack,
                _ => (TestBranchState?)null,
            };
            if (state is { } s)
            {
                states[Path.GetFileNameWithoutExtension(path)] = s;
            }
        }

        return states;
    }

    /// <inheritdoc />
    public ValueTask<BranchOutcome> CommitAsync(Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            if (File.Exists(PathOf(xid, ".committed")))
            {
                return ValueTask.FromResult(BranchOutcome.Committed);
            }

            if (File.Exists(PathOf(xid, ".prepared")))
            {
                File.Move(PathOf(xid, ".prepared"), PathOf(xid, ".committed"));
                return ValueTask.FromResult(BranchOutcome.Committed);
            }

            return ValueTask.FromResult(File.Exists(PathOf(xid, ".rolledback")) ? BranchOutcome.RolledBack : BranchOutcome.Unknown);
        }
    }

    /// <inheritdoc />
    public ValueTask<BranchOutcome> RollbackAsync(Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            if (File.Exists(PathOf(xid, ".committed")))
            {
                return ValueTask.FromResult(BranchOutcome.Committed);
            }

            if (File.Exists(PathOf(xid, ".prepared")))
            {
                File.Move(PathOf(xid, ".prepared"), PathOf(xid, ".rolledback"));
            }
            else if (!File.Exists(PathOf(xid, ".rolledback")))
            {
                // Remember the rollback so a prepare that arrives late cannot resurrect the branch.
                WriteDurably(PathOf(xid, ".rolledback"), string.Empty);
            }

            return ValueTask.FromResult(BranchOutcome.RolledBack);
        }
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyCollection<InDoubtBranch>> RecoverAsync(CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            IReadOnlyCollection<InDoubtBranch> inDoubt = [.. System.IO.Directory.EnumerateFiles(Directory, "*.prepared")
                .Select(p => new InDoubtBranch(Xid.Parse(Path.GetFileNameWithoutExtension(p)), new DateTimeOffset(File.GetLastWriteTimeUtc(p), TimeSpan.Zero)))];
            return ValueTask.FromResult(inDoubt);
        }
    }

    /// <inheritdoc />
    public ValueTask ForgetAsync(Xid xid, CancellationToken cancellationToken) => ValueTask.CompletedTask;

    private string PathOf(Xid xid, string state) => Path.Combine(Directory, xid + state);

    private static void WriteDurably(string path, string content)
    {
        using var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None);
        stream.Write(Encoding.UTF8.GetBytes(content));
        stream.Flush(flushToDisk: true);
    }

    private sealed class Branch(FileResourceManager rm, Xid xid, string value) : ITransactionBranch
    {
        public IResourceManager ResourceManager => rm;

        public ValueTask<Vote> PrepareAsync(CancellationToken cancellationToken)
        {
            lock (rm._gate)
            {
                if (File.Exists(rm.PathOf(xid, ".rolledback")))
                {
                    return ValueTask.FromResult(Vote.No("already rolled back"));
                }

                if (rm.VoteNo?.Invoke(xid) == true)
                {
                    WriteDurably(rm.PathOf(xid, ".rolledback"), value);
                    return ValueTask.FromResult(Vote.No("scripted no vote"));
                }

                WriteDurably(rm.PathOf(xid, ".prepared"), value);
                return ValueTask.FromResult(Vote.Yes());
            }
        }

        public ValueTask<BranchOutcome> CommitOnePhaseAsync(CancellationToken cancellationToken)
        {
            lock (rm._gate)
            {
                WriteDurably(rm.PathOf(xid, ".committed"), value);
                return ValueTask.FromResult(BranchOutcome.Committed);
            }
        }

        public ValueTask<BranchOutcome> RollbackAsync(CancellationToken cancellationToken) => rm.RollbackAsync(xid, default, cancellationToken);
    }

    private sealed class ReadOnlyBranch(FileResourceManager rm, Xid xid) : ITransactionBranch
    {
        public IResourceManager ResourceManager => rm;

        public ValueTask<Vote> PrepareAsync(CancellationToken cancellationToken) =>
            ValueTask.FromResult(rm.VoteNo?.Invoke(xid) == true ? Vote.No("scripted no vote") : Vote.ReadOnly);

        public ValueTask<BranchOutcome> CommitOnePhaseAsync(CancellationToken cancellationToken) => ValueTask.FromResult(BranchOutcome.Committed);

        public ValueTask<BranchOutcome> RollbackAsync(CancellationToken cancellationToken) => ValueTask.FromResult(BranchOutcome.RolledBack);
    }
}
