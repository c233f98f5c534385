using TwoPC.Participants;
using TwoPC.Protocol;
using TwoPC.Wal;

namespace TwoPC.Samples.Readme;

/// <summary>The TwoPC.Core package README.</summary>
public static class CoreSnippets
{
    /// <summary>Coordinator/TwoPC.Core/README.md.</summary>
    public static async Task<TransactionOutcome> PackageAsync(IResourceManager ordersDb, IResourceManager events)
    {
        #region package
        // using TwoPC.Protocol; using TwoPC.Wal;
        await using var coordinator = new TransactionCoordinator(
            new TransactionCoordinatorOptions { NodeId = "orders-1" },
            new FileTransactionLog(new FileTransactionLogOptions { Directory = "/var/lib/orders/twopc" }),
            [ordersDb, events]);                     // your resource managers
        await coordinator.StartAsync();              // reads the log and recovers first

        await using var tx = coordinator.Begin(TimeSpan.FromSeconds(30));
        // enlist branches, do the work, then:
        var outcome = await tx.CommitAsync();        // Committed, RolledBack (with the reason) or Heuristic*
        #endregion
        return outcome;
    }
}
