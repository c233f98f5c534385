using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using TwoPC.Durability.PostgreSql;
using TwoPC.Participants;
using TwoPC.Protocol;

namespace TwoPC.Samples.Readme;

/// <summary>The TwoPC.Durability.PostgreSql package README.</summary>
public static class SharedLogSnippets
{
    /// <summary>Coordinator/TwoPC.Durability.PostgreSql/README.md.</summary>
    public static async Task PackageAsync(IResourceManager ordersDb, IResourceManager events, ILoggerFactory loggerFactory, IMeterFactory meterFactory)
    {
        #region package
        // using TwoPC.Durability.PostgreSql; using TwoPC.Protocol;
        var log = new PostgreSqlTransactionLog(
            new PostgreSqlTransactionLogOptions
            {
                ConnectionString = "Host=twopc-db;Database=twopc;Username=coordinator",
                Schema = "twopc",                           // the defaults below
                LeaseDuration = TimeSpan.FromSeconds(10),
                RenewInterval = TimeSpan.FromSeconds(3),
            },
            loggerFactory, meterFactory);
        await using var coordinator = new TransactionCoordinator(
            new TransactionCoordinatorOptions { NodeId = "orders-1" },   // one node id per coordinator process
            log,
            [ordersDb, events]);
        await coordinator.StartAsync();   // opens the log: node orders-1's lease under a new epoch, then recovery
        #endregion
    }
}
