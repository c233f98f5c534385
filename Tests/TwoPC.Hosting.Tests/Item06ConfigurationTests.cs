using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using TwoPC.Participants;
using TwoPC.Protocol;
using TwoPC.Testing;
using TwoPC.Transactions;

namespace TwoPC.Hosting.Tests;

/// <summary>Issue 15 item 6: every key the README documents under <c>TwoPC:</c> binds; an unknown one fails the start.</summary>
public sealed class Item06ConfigurationTests : IDisposable
{
    private readonly DirectoryInfo _log = Directory.CreateTempSubdirectory("twopc-config-");

    public void Dispose() => _log.Delete(recursive: true);

    // Every key of the README's configuration table, a non-default value, and how to read it back from the options
    // instance the hosted service hands to the coordinator.
    public static TheoryData<string, string, string> DocumentedKeys => new()
    {
        { "NodeId", "node-7", "node-7" },
        { "SegmentSize", "65536", "65536" },
        { "DefaultTimeout", "00:00:42", "00:00:42" },
        { "MaxTimeout", "00:07:00", "00:07:00" },
        { "OrphanSafetyInterval", "00:00:31", "00:00:31" },
        { "RecoveryInterval", "00:00:16", "00:00:16" },
        { "RetryBaseDelay", "00:00:00.0510000", "00:00:00.0510000" },
        { "RetryMaxDelay", "00:00:29", "00:00:29" },
        { "BranchCallTimeout", "00:00:11", "00:00:11" },
        { "RollbackAttempts", "7", "7" },
        { "RecentOutcomeCapacity", "123", "123" },
        { "TakeoverInterval", "00:00:02", "00:00:02" },
        { "LastResourceCommit", "true", "True" },
    };

    [Theory]
    [MemberData(nameof(DocumentedKeys))]
    public async Task Item06_every_documented_key_binds_to_the_options_the_coordinator_uses(string key, string value, string expected)
    {
        var settings = Settings();
        settings["TwoPC:" + key] = value;
        using var host = Build(settings, _ => { });
        await host.StartAsync();

        // The hosted service built the coordinator from exactly this instance (IOptions<TwoPCOptions>.Value).
        var options = host.Services.GetRequiredService<IOptions<TwoPCOptions>>().Value;
        var bound = typeof(TwoPCOptions).GetProperty(key)!.GetValue(options);
        Assert.Equal(expected, Convert.ToString(bound, System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(value == "node-7" ? "node-7" : "orders-1", host.Services.GetRequiredService<TransactionCoordinator>().NodeId.Value);
        await host.StopAsync();
    }

    [Fact]
    public async Task Item06_LogDirectory_binds_and_the_log_is_written_there()
    {
        using var host = Build(Settings(), _ => { });
        await host.StartAsync();
        Assert.Equal(_log.FullName, host.Services.GetRequiredService<IOptions<TwoPCOptions>>().Value.LogDirectory);
        Assert.True(File.Exists(Path.Combine(_log.FullName, "MANIFEST")), "the write-ahead log was created in TwoPC:LogDirectory");
        await host.StopAsync();
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    public async Task Item06_RollbackAttempts_from_configuration_bounds_the_rollback_tries(int attempts)
    {
        var failing = new FailingRollback("failing");
        var settings = Settings();
        settings["TwoPC:RollbackAttempts"] = attempts.ToString(System.Globalization.CultureInfo.InvariantCulture);
        settings["TwoPC:RetryBaseDelay"] = "00:00:00.001";
        settings["TwoPC:RetryMaxDelay"] = "00:00:00.002";
        using var host = Build(settings, builder => builder.AddResourceManager(failing));
        await host.StartAsync();
        var coordinator = host.Services.GetRequiredService<TransactionCoordinator>();

        var tx = coordinator.Begin();
        tx.Enlist(failing.CreateBranch);
        await tx.RollbackAsync();

        Assert.Equal(attempts, failing.RollbackCalls);
        await host.StopAsync();
    }

    [Fact]
    public async Task Item06_RecentOutcomeCapacity_from_configuration_bounds_the_outcomes_kept()
    {
        var a = new ScriptedResourceManager("a");
        var settings = Settings();
        settings["TwoPC:RecentOutcomeCapacity"] = "1";
        using var host = Build(settings, builder => builder.AddResourceManager(a));
        await host.StartAsync();
        var coordinator = host.Services.GetRequiredService<TransactionCoordinator>();

        var first = coordinator.Begin();
        first.Enlist(a.CreateBranch);
        Assert.Equal(OutcomeKind.Committed, (await first.CommitAsync()).Kind);
        var second = coordinator.Begin();
        second.Enlist(a.CreateBranch);
        Assert.Equal(OutcomeKind.Committed, (await second.CommitAsync()).Kind);

        // The default (10,000) would still know the first; a capacity of one keeps only the latest.
        Assert.Equal(TransactionState.Unknown, coordinator.GetStatus(first.Id).State);
        Assert.Equal(TransactionState.Committed, coordinator.GetStatus(second.Id).State);
        await host.StopAsync();
    }

    [Theory]
    [InlineData("TwoPC:RollbackAttempt", "RollbackAttempt")]
    [InlineData("TwoPC:recoveryinterva", "recoveryinterva")]
    [InlineData("TwoPC:Participants:Name", "Participants")]
    public async Task Item06_an_unknown_key_under_TwoPC_fails_the_start_naming_it_and_the_known_ones(string key, string named)
    {
        var settings = Settings();
        settings[key] = "2";
        using var host = Build(settings, _ => { });

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.Contains($"TwoPC:{named}", error.Message, StringComparison.Ordinal);
        Assert.Contains("RollbackAttempts", error.Message, StringComparison.Ordinal);
        Assert.Contains("RecentOutcomeCapacity", error.Message, StringComparison.Ordinal);
        Assert.Contains("LogDirectory", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Item06_the_remote_participant_subsection_and_keys_in_any_case_are_allowed()
    {
        var settings = Settings();
        settings["TwoPC:Participant:Name"] = "payments";
        settings["TwoPC:Participant:Key"] = "not-used-by-the-coordinator";
        settings["TwoPC:rollbackattempts"] = "5"; // configuration keys are case-insensitive
        using var host = Build(settings, _ => { });

        await host.StartAsync();

        Assert.Equal(5, host.Services.GetRequiredService<IOptions<TwoPCOptions>>().Value.RollbackAttempts);
        await host.StopAsync();
    }

    private Dictionary<string, string?> Settings() => new()
    {
        ["TwoPC:NodeId"] = "orders-1",
        ["TwoPC:LogDirectory"] = _log.FullName,
    };

    private static IHost Build(Dictionary<string, string?> settings, Action<TwoPhaseCommitBuilder> configure)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(settings);
        configure(builder.Services.AddTwoPhaseCommit(builder.Configuration.GetSection(TwoPCOptions.SectionName)));
        return builder.Build();
    }

    /// <summary>A resource whose rollback always fails, counting the tries.</summary>
    private sealed class FailingRollback(string name) : IResourceManager
    {
        private int _rollbackCalls;

        public string Name => name;

        public int RollbackCalls => Volatile.Read(ref _rollbackCalls);

        public ITransactionBranch CreateBranch(Xid xid) => new Branch(this, xid);

        public ValueTask<BranchOutcome> CommitAsync(Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken) => ValueTask.FromResult(BranchOutcome.Committed);

        public ValueTask<BranchOutcome> RollbackAsync(Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _rollbackCalls);
            throw new ResourceUnavailableException("the resource is down");
        }

        public ValueTask<IReadOnlyCollection<InDoubtBranch>> RecoverAsync(CancellationToken cancellationToken) => ValueTask.FromResult<IReadOnlyCollection<InDoubtBranch>>([]);

        public ValueTask ForgetAsync(Xid xid, CancellationToken cancellationToken) => ValueTask.CompletedTask;

        private sealed class Branch(FailingRollback rm, Xid xid) : ITransactionBranch
        {
            public IResourceManager ResourceManager => rm;

            public ValueTask<Vote> PrepareAsync(CancellationToken cancellationToken) => ValueTask.FromResult(Vote.Yes());

            public ValueTask<BranchOutcome> CommitOnePhaseAsync(CancellationToken cancellationToken) => ValueTask.FromResult(BranchOutcome.Committed);

            public ValueTask<BranchOutcome> RollbackAsync(CancellationToken cancellationToken) => rm.RollbackAsync(xid, default, cancellationToken);
        }
    }
}
