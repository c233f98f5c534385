using Microsoft.Extensions.Diagnostics.HealthChecks;
using TwoPC.Protocol;

namespace TwoPC.Hosting;

/// <summary>
/// Health of the embedded coordinator: unhealthy until recovery is done or after the log failed;
/// degraded while transactions are in doubt or heuristic outcomes wait for an operator.
/// </summary>
internal sealed class TwoPCHealthCheck(TransactionCoordinator coordinator) : IHealthCheck
{
    /// <inheritdoc />
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var heuristics = coordinator.GetHeuristics().Count;
        var oldestPrepared = coordinator.ResourceManagers.OfType<TwoPC.Participants.IPreparedAgeReporter>()
            .Select(r => r.OldestPreparedAge).Where(a => a is not null).DefaultIfEmpty(null).Max();
        var data = new Dictionary<string, object>
        {
            ["started"] = coordinator.IsStarted,
            ["log_writable"] = coordinator.LogFailure is null,
            ["active"] = coordinator.ActiveTransactions,
            ["recovering"] = coordinator.RecoveringTransactions,
            ["in_doubt_branches"] = coordinator.InDoubtBranches,
            ["heuristics"] = heuristics,
        };
        if (coordinator.Lease is { } lease)
        {
            data["lease_epoch"] = lease.Epoch;
            data["lease_expires_at"] = lease.ExpiresAt;
            data["adopted_nodes"] = string.Join(",", coordinator.AdoptedNodes.Keys.Select(n => n.Value).Order(StringComparer.Ordinal));
        }

        if (oldestPrepared is { } age)
        {
            data["oldest_prepared_seconds"] = age.TotalSeconds;
        }

        if (coordinator.IsFenced)
        {
            data["fenced"] = true;
            return Task.FromResult(HealthCheckResult.Unhealthy("This node was fenced: another coordinator node took over its lease. It decides nothing more; restart it to rejoin.", coordinator.LogFailure, data));
        }

        if (coordinator.LogFailure is { } failure)
        {
            return Task.FromResult(HealthCheckResult.Unhealthy("The transaction log has failed; restart the coordinator to recover.", failure, data));
        }

        if (!coordinator.IsStarted)
        {
            return Task.FromResult(HealthCheckResult.Unhealthy("Recovery has not finished (or the coordinator is stopping).", null, data));
        }

        if (heuristics > 0 || coordinator.InDoubtBranches > 0)
        {
            return Task.FromResult(HealthCheckResult.Degraded($"{heuristics} heuristic outcomes and {coordinator.InDoubtBranches} in-doubt branches need attention.", null, data));
        }

        return Task.FromResult(HealthCheckResult.Healthy("Recovered and accepting transactions.", data));
    }
}
