using TwoPC.Participants;
using TwoPC.Protocol;
using TwoPC.Testing;

namespace TwoPC.Tests.Protocol;

/// <summary>Builds started coordinators over an in-memory log with fast retries for protocol tests.</summary>
internal static class CoordinatorFixture
{
    public static TransactionCoordinatorOptions Options(string node = "node-a") => new()
    {
        NodeId = node,
        RetryBaseDelay = TimeSpan.FromMilliseconds(1),
        RetryMaxDelay = TimeSpan.FromMilliseconds(5),
        BranchCallTimeout = TimeSpan.FromSeconds(10),
        OrphanSafetyInterval = TimeSpan.FromMilliseconds(1),
        RecoveryInterval = TimeSpan.FromHours(1),
    };

    public static async Task<TransactionCoordinator> StartAsync(InMemoryTransactionLog log, params IResourceManager[] resourceManagers) =>
        await StartAsync(Options(), log, resourceManagers);

    public static async Task<TransactionCoordinator> StartAsync(TransactionCoordinatorOptions options, InMemoryTransactionLog log, params IResourceManager[] resourceManagers)
    {
        var coordinator = new TransactionCoordinator(options, log, resourceManagers);
        await coordinator.StartAsync();
        return coordinator;
    }

    /// <summary>Begins a transaction with one branch of each resource manager, in order.</summary>
    public static GlobalTransaction BeginWith(TransactionCoordinator coordinator, params ScriptedResourceManager[] resourceManagers)
    {
        var tx = coordinator.Begin();
        foreach (var rm in resourceManagers)
        {
            tx.Enlist(rm.CreateBranch);
        }

        return tx;
    }

    public static async Task<TransactionState> WaitForEndAsync(TransactionCoordinator coordinator, TwoPC.Transactions.GlobalTransactionId id)
    {
        for (var i = 0; i < 500; i++)
        {
            var state = coordinator.GetStatus(id).State;
            if (state is TransactionState.Committed or TransactionState.RolledBack or TransactionState.Heuristic)
            {
                return state;
            }

            await Task.Delay(10);
        }

        return coordinator.GetStatus(id).State;
    }
}
