using TwoPC.Recovery;
using TwoPC.Transactions;

namespace TwoPC.Protocol;

/// <summary>
/// The one way a transaction ends: <see cref="GlobalTransaction.CommitAsync"/>, <see cref="GlobalTransaction.RollbackAsync"/>
/// and the timeout reaper all come here, and exactly one caller starts the protocol (the others wait for its outcome).
/// </summary>
internal sealed class TransactionCompletions(TwoPhaseCommit protocol, TransactionTable table, ResourceManagerRegistry resourceManagers, TimeProvider time)
{
    public TimeProvider Time => time;

    /// <summary>Whether branches are enlisted for the last-resource commit (<see cref="TransactionCoordinatorOptions.LastResourceCommit"/>).</summary>
    public bool LastResourceCommit { get; init; }

    /// <summary>Where an enlisting branch's resource manager must be registered.</summary>
    public ResourceManagerRegistry ResourceManagers => resourceManagers;

    public Task<TransactionOutcome> CommitAsync(GlobalTransaction transaction, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        var completion = transaction.BeginCompletion(TransactionState.Preparing, out var owner, out var branches);
        if (owner)
        {
            Run(transaction, completion, () => protocol.CommitAsync(transaction, branches, cancellationToken));
        }

        return completion.Task.WaitAsync(cancellationToken);
    }

    public Task<TransactionOutcome> RollbackAsync(GlobalTransaction transaction, CancellationToken cancellationToken) =>
        Rollback(transaction, "rolled back by the application").WaitAsync(cancellationToken);

    /// <summary>Rolls back (or joins the completion already running) for <paramref name="reason"/>.</summary>
    public Task<TransactionOutcome> Rollback(GlobalTransaction transaction, string reason)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        var completion = transaction.BeginCompletion(TransactionState.RollingBack, out var owner, out var branches);
        if (owner)
        {
            Run(transaction, completion, () => protocol.RollbackAsync(transaction, branches, reason));
        }

        return completion.Task;
    }

    private void Run(GlobalTransaction transaction, TaskCompletionSource<TransactionOutcome> completion, Func<Task<TransactionOutcome>> start)
    {
        // Tracked before the protocol starts: a completion that finishes synchronously (read-only, empty)
        // removes itself from the table, and tracking it afterwards would leak it there forever.
        table.TrackCompletion(transaction.Id, completion.Task);
        Task<TransactionOutcome> running;
        try
        {
            running = start();
        }
        catch (Exception ex)
        {
            running = Task.FromException<TransactionOutcome>(ex);
        }

        running.ContinueWith(
            static (t, state) =>
            {
                var (tcs, id) = ((TaskCompletionSource<TransactionOutcome>, GlobalTransactionId))state!;
                if (t.IsCompletedSuccessfully)
                {
                    tcs.TrySetResult(t.Result);
                }
                else if (t.IsCanceled)
                {
                    // Only the coordinator's shutdown cancels a running protocol (phase-2 retries stop with it);
                    // a cancelled task has no exception to pass on, so say what happened instead of leaving the caller waiting.
                    tcs.TrySetException(new OperationCanceledException($"The coordinator stopped before transaction {id} finished; if its commit decision was logged, recovery completes it after the restart."));
                }
                else
                {
                    // The transaction stays in the live table on purpose: its decision may be on disk, so
                    // recovery in this process must not presume it aborted. A restart settles it from the log.
                    tcs.TrySetException(t.Exception!.InnerExceptions);
                }
            },
            (completion, transaction.Id),
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
    }
}
