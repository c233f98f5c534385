using TwoPC.Durability;
using TwoPC.Transactions;

namespace TwoPC.CrashHost;

/// <summary>
/// Wraps the real log to inject a log failure (<c>run --fail-log-at K</c>): the K-th commit decision is
/// written and forced by the real log — so it IS durable — and then reported as failed, like an fsync
/// error after the data reached the disk. From then on the log is fail-stopped: every call throws
/// <see cref="TransactionLogFailedException"/>, as <see cref="ITransactionLog"/> requires. This is the
/// "may or may not be durable" case the coordinator documents: the transaction's branches must stay
/// prepared until a restart reads the log.
/// </summary>
internal sealed class FaultInjectingLog(ITransactionLog inner, int failAt) : ITransactionLog
{
    private int _decisions;
    private volatile Exception? _failure;

    public Exception? Failure => _failure ?? inner.Failure;

    public ValueTask<LogRecoveryState> OpenAsync(CancellationToken cancellationToken) => inner.OpenAsync(cancellationToken);

    public ValueTask<LogRecoveryState> OpenAsync(NodeId node, CancellationToken cancellationToken) => inner.OpenAsync(node, cancellationToken);

    public async ValueTask LogCommitDecisionAsync(CommitDecision decision)
    {
        ThrowIfFailed();
        if (Interlocked.Increment(ref _decisions) != failAt)
        {
            await inner.LogCommitDecisionAsync(decision);
            return;
        }

        await inner.LogCommitDecisionAsync(decision);
        _failure = new IOException("injected: fsync reported an error after the decision reached the disk");
        Output.Line($"LOGFAILED {decision.TransactionId}");
        ThrowIfFailed();
    }

    public ValueTask LogHeuristicAsync(HeuristicRecord record)
    {
        ThrowIfFailed();
        return inner.LogHeuristicAsync(record);
    }

    public void LogEnd(GlobalTransactionId transactionId)
    {
        ThrowIfFailed();
        inner.LogEnd(transactionId);
    }

    public ValueTask DisposeAsync() => inner.DisposeAsync();

    private void ThrowIfFailed()
    {
        if (_failure is { } failure)
        {
            throw new TransactionLogFailedException("The transaction log has failed (injected).", failure);
        }
    }
}
