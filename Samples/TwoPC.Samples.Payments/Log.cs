using Microsoft.Extensions.Logging;
using TwoPC.Transactions;

namespace TwoPC.Samples.Payments;

/// <summary>The payment service's logs (event ids 8100-8199).</summary>
internal static partial class Log
{
    public const string Category = "TwoPC.Samples.Payments";

    [LoggerMessage(EventId = 8100, Level = LogLevel.Information, Message = "Payment service ready: {WalletCount} wallets, chaos controls {Chaos}")]
    public static partial void Ready(this ILogger logger, long walletCount, string chaos);

    [LoggerMessage(EventId = 8101, Level = LogLevel.Information, Message = "Order {OrderId}: debited {Amount} from {CustomerId} in branch {Xid}; preparing")]
    public static partial void Debited(this ILogger logger, string orderId, decimal amount, string customerId, Xid xid);

    [LoggerMessage(EventId = 8102, Level = LogLevel.Information, Message = "Order {OrderId}: payment prepared (vote yes), waiting for the coordinator's decision")]
    public static partial void Prepared(this ILogger logger, string orderId);

    [LoggerMessage(EventId = 8103, Level = LogLevel.Information, Message = "Order {OrderId}: payment refused ({StatusCode}): {Reason}")]
    public static partial void Refused(this ILogger logger, string orderId, int statusCode, string reason);

    [LoggerMessage(EventId = 8110, Level = LogLevel.Warning, Message = "Chaos: holding the coordinator's commit callback until the coordinator goes away (nothing is committed)")]
    public static partial void CommitHeld(this ILogger logger);

    [LoggerMessage(EventId = 8111, Level = LogLevel.Warning, Message = "Chaos: the next commit callback will be held")]
    public static partial void HoldArmed(this ILogger logger);
}
