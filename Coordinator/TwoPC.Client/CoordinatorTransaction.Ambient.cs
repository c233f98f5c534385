namespace TwoPC.Client;

/// <summary>The ambient transaction: what <see cref="TwoPCTransactionPropagationHandler"/> sends to branch services.</summary>
public sealed partial class CoordinatorTransaction
{
    private static readonly AsyncLocal<CoordinatorTransaction?> Ambient = new();

    /// <summary>
    /// The transaction entered with <see cref="Enter"/> on this asynchronous flow, or <see langword="null"/>: outside
    /// every scope, or once the transaction was committed, rolled back or disposed (a finished transaction is never current).
    /// </summary>
    /// <remarks>
    /// It flows like <see cref="System.Diagnostics.Activity.Current"/> and <c>System.Transactions.TransactionScope</c> with
    /// <c>TransactionScopeAsyncFlowOption.Enabled</c>: into the methods called and the tasks started inside the scope, across
    /// <see langword="await"/>s, but never back out to a caller — a scope entered inside an <see langword="async"/> method ends
    /// for its caller when that method returns. So enter it in the method that makes the calls.
    /// </remarks>
    public static CoordinatorTransaction? Current => Ambient.Value is { IsFinished: false } transaction ? transaction : null;

    /// <summary><see langword="true"/> once <see cref="CommitAsync"/>, <see cref="RollbackAsync"/> or <see cref="DisposeAsync"/> was called.</summary>
    public bool IsFinished => Volatile.Read(ref _finished) != 0;

    /// <summary>
    /// Makes this the <see cref="Current"/> transaction until the returned scope is disposed (which restores the one current
    /// before): <c>using (tx.Enter()) { await inventory.PostAsJsonAsync(...); }</c>. Scopes nest; dispose them in the reverse
    /// order, on the flow that entered them.
    /// </summary>
    /// <exception cref="InvalidOperationException">The transaction is already finished.</exception>
    public IDisposable Enter()
    {
        if (IsFinished)
        {
            throw new InvalidOperationException($"Transaction {Id} is finished (committed, rolled back or disposed); it cannot become the current transaction.");
        }

        var scope = new Scope(this, Ambient.Value);
        Ambient.Value = this;
        return scope;
    }

    private sealed class Scope(CoordinatorTransaction transaction, CoordinatorTransaction? previous) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0)
            {
                return;
            }

            if (!ReferenceEquals(Ambient.Value, transaction))
            {
                // As TransactionScope: a scope disposed out of order (or on another flow) would leave the wrong transaction current.
                throw new InvalidOperationException(
                    $"The scope of transaction {transaction.Id} was disposed while it is not the current one: dispose scopes in the reverse order of Enter, on the flow that entered them.");
            }

            Ambient.Value = previous;
        }
    }
}
