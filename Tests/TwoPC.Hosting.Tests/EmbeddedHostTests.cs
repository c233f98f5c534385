using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using TwoPC.Durability;
using TwoPC.Participants;
using TwoPC.Protocol;
using TwoPC.Testing;
using TwoPC.Transactions;
using TwoPC.Wal;

namespace TwoPC.Hosting.Tests;

public sealed class EmbeddedHostTests : IDisposable
{
    private readonly DirectoryInfo _log = Directory.CreateTempSubdirectory("twopc-host-");

    public void Dispose() => _log.Delete(recursive: true);

    [Fact]
    public async Task The_host_recovers_before_it_reports_started_then_serves_transactions()
    {
        // A previous run of this node logged a commit decision and died before phase 2.
        var a = new ScriptedResourceManager("a");
        var b = new ScriptedResourceManager("b");
        var id = new GlobalTransactionId(NodeId.Parse("orders-1"), 1, 1);
        a.AddPrepared(Xid.ForBranch(id, 1));
        b.AddPrepared(Xid.ForBranch(id, 2));
        await using (var log = new FileTransactionLog(new FileTransactionLogOptions { Directory = _log.FullName }))
        {
            await log.OpenAsync(default);
            await log.LogCommitDecisionAsync(new CommitDecision(id, DateTimeOffset.UtcNow, [new LoggedBranch("a", Xid.ForBranch(id, 1), default), new LoggedBranch("b", Xid.ForBranch(id, 2), default)]));
        }

        using var host = Build(new Dictionary<string, string?> { ["TwoPC:NodeId"] = "orders-1", ["TwoPC:LogDirectory"] = _log.FullName }, builder => builder.AddResourceManager(a).AddResourceManager(b));
        var coordinator = host.Services.GetRequiredService<TransactionCoordinator>();
        Assert.Throws<CoordinatorUnavailableException>(() => coordinator.Begin());

        await host.StartAsync();

        Assert.True(coordinator.IsStarted);
        Assert.Equal(2UL, coordinator.Epoch);
        Assert.Equal(["a", "b"], coordinator.ResourceManagers.Select(r => r.Name).Order());
        for (var i = 0; i < 200 && coordinator.RecoveringTransactions > 0; i++)
        {
            await Task.Delay(20);
        }

        Assert.Equal(TestBranchState.Committed, a.States[Xid.ForBranch(id, 1)]);
        Assert.Equal(TestBranchState.Committed, b.States[Xid.ForBranch(id, 2)]);

        var tx = coordinator.Begin();
        tx.Enlist(a.CreateBranch);
        tx.Enlist(b.CreateBranch);
        Assert.Equal(OutcomeKind.Committed, (await tx.CommitAsync()).Kind);

        var health = await host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync();
        Assert.Equal(HealthStatus.Healthy, health.Status);
        await host.StopAsync();
        Assert.False(coordinator.IsStarted);
    }

    [Fact]
    public async Task A_heuristic_on_record_degrades_health()
    {
        var a = new ScriptedResourceManager("a");
        var b = new ScriptedResourceManager("b") { CommitAnswer = BranchOutcome.RolledBack };
        using var host = Build(new Dictionary<string, string?> { ["TwoPC:NodeId"] = "orders-1", ["TwoPC:LogDirectory"] = _log.FullName }, builder => builder.AddResourceManager(a).AddResourceManager(b));
        await host.StartAsync();
        var coordinator = host.Services.GetRequiredService<TransactionCoordinator>();
        var tx = coordinator.Begin();
        tx.Enlist(a.CreateBranch);
        tx.Enlist(b.CreateBranch);
        Assert.Equal(OutcomeKind.HeuristicMixed, (await tx.CommitAsync()).Kind);

        var health = await host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync();
        Assert.Equal(HealthStatus.Degraded, health.Status);
        Assert.Equal(1, health.Entries["twopc"].Data["heuristics"]);
        await host.StopAsync();
    }

    [Theory]
    [InlineData(null, "/tmp/x", null, "TwoPC:NodeId is required")]
    [InlineData("Bad Node", "/tmp/x", null, "TwoPC:NodeId must be")]
    [InlineData("orders-1", null, null, "TwoPC:LogDirectory is required")]
    [InlineData("orders-1", "/tmp/x", "00:20:00", "TwoPC:DefaultTimeout")]
    public async Task A_misconfigured_host_fails_to_start_naming_the_setting(string? nodeId, string? logDirectory, string? defaultTimeout, string expected)
    {
        using var host = Build(new Dictionary<string, string?> { ["TwoPC:NodeId"] = nodeId, ["TwoPC:LogDirectory"] = logDirectory, ["TwoPC:DefaultTimeout"] = defaultTimeout }, _ => { });
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_resource_manager_created_at_start_is_resolvable_afterwards()
    {
        using var host = Build(new Dictionary<string, string?> { ["TwoPC:NodeId"] = "orders-1", ["TwoPC:LogDirectory"] = _log.FullName },
            builder => builder.AddResourceManager((_, _) => Task.FromResult(new ScriptedResourceManager("late"))));
        await host.StartAsync();
        var rm = host.Services.GetRequiredService<ScriptedResourceManager>();
        Assert.Equal("late", rm.Name);
        Assert.Contains(rm, host.Services.GetRequiredService<TransactionCoordinator>().ResourceManagers);
        await host.StopAsync();
    }

    [Fact]
    public async Task Health_reports_the_age_of_the_oldest_prepared_branch()
    {
        var aged = new AgedResourceManager(TimeSpan.FromMinutes(7));
        using var host = Build(new Dictionary<string, string?> { ["TwoPC:NodeId"] = "orders-1", ["TwoPC:LogDirectory"] = _log.FullName }, builder => builder.AddResourceManager(aged));
        await host.StartAsync();
        var health = await host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync();
        Assert.Equal(420.0, health.Entries["twopc"].Data["oldest_prepared_seconds"]);
        await host.StopAsync();
    }

    private sealed class AgedResourceManager(TimeSpan age) : IResourceManager, IPreparedAgeReporter
    {
        private readonly ScriptedResourceManager _inner = new("aged");

        public string Name => _inner.Name;

        public TimeSpan? OldestPreparedAge => age;

        public ValueTask<BranchOutcome> CommitAsync(Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken) => _inner.CommitAsync(xid, recoveryData, cancellationToken);

        public ValueTask<BranchOutcome> RollbackAsync(Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken) => _inner.RollbackAsync(xid, recoveryData, cancellationToken);

        public ValueTask<IReadOnlyCollection<InDoubtBranch>> RecoverAsync(CancellationToken cancellationToken) => _inner.RecoverAsync(cancellationToken);

        public ValueTask ForgetAsync(Xid xid, CancellationToken cancellationToken) => _inner.ForgetAsync(xid, cancellationToken);
    }

    private static IHost Build(Dictionary<string, string?> settings, Action<TwoPhaseCommitBuilder> configure)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(settings);
        configure(builder.Services.AddTwoPhaseCommit(builder.Configuration.GetSection(TwoPCOptions.SectionName)));
        return builder.Build();
    }
}
