using System.Globalization;
using Microsoft.Extensions.Options;

namespace TwoPC.Coordinator.Server;

/// <summary>Logs the limits in effect at start, and warns when the connection limit is not below the process's open-file limit.</summary>
internal sealed class LimitsStartupCheck(IOptions<CoordinatorLimitsOptions> options, ILogger<LimitsStartupCheck> logger) : IHostedService
{
    // Descriptors the process needs besides client connections: the log, participant calls, the runtime.
    private const int Reserve = 256;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var limits = options.Value;
        Log.LimitsInEffect(logger, limits.MaxConcurrentConnections, limits.MaxRequestBodySize, limits.MaxBranchesPerTransaction, limits.MaxLiveTransactions, limits.MaxLiveTransactionsPerClient);
        if (OpenFileLimit() is { } fileLimit && limits.MaxConcurrentConnections + Reserve > fileLimit)
        {
            Log.ConnectionLimitAboveFileLimit(logger, limits.MaxConcurrentConnections, fileLimit);
        }

        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    // The soft "Max open files" of /proc/self/limits (Linux); unknown elsewhere.
    private static long? OpenFileLimit()
    {
        try
        {
            var line = File.ReadLines("/proc/self/limits").FirstOrDefault(l => l.StartsWith("Max open files", StringComparison.Ordinal));
            var soft = line?["Max open files".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault();
            return long.TryParse(soft, NumberStyles.None, CultureInfo.InvariantCulture, out var value) ? value : null;
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }
}
