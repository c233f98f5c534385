using System.Data.Common;
using Microsoft.EntityFrameworkCore.Diagnostics;

namespace TwoPC.Participants.PostgreSql.EntityFrameworkCore;

/// <summary>
/// Refuses to begin, commit or roll back a transaction through a context on a branch: the global transaction alone
/// finishes the branch (a commit here would end it before PREPARE TRANSACTION, outside the protocol). Savepoints pass.
/// Stateless, so one instance serves every context (and EF Core's internal service provider is shared).
/// </summary>
internal sealed class BranchTransactionGuard : DbTransactionInterceptor
{
    public static readonly BranchTransactionGuard Instance = new();


    public override InterceptionResult<DbTransaction> TransactionStarting(DbConnection connection, TransactionStartingEventData eventData, InterceptionResult<DbTransaction> result) =>
        throw Refused("begin");

    public override ValueTask<InterceptionResult<DbTransaction>> TransactionStartingAsync(DbConnection connection, TransactionStartingEventData eventData, InterceptionResult<DbTransaction> result, CancellationToken cancellationToken = default) =>
        throw Refused("begin");

    public override InterceptionResult TransactionCommitting(DbTransaction transaction, TransactionEventData eventData, InterceptionResult result) =>
        throw Refused("commit");

    public override ValueTask<InterceptionResult> TransactionCommittingAsync(DbTransaction transaction, TransactionEventData eventData, InterceptionResult result, CancellationToken cancellationToken = default) =>
        throw Refused("commit");

    public override InterceptionResult TransactionRollingBack(DbTransaction transaction, TransactionEventData eventData, InterceptionResult result) =>
        throw Refused("roll back");

    public override ValueTask<InterceptionResult> TransactionRollingBackAsync(DbTransaction transaction, TransactionEventData eventData, InterceptionResult result, CancellationToken cancellationToken = default) =>
        throw Refused("roll back");

    private static InvalidOperationException Refused(string what) =>
        new($"A DbContext on a TwoPC branch does not {what} its transaction: the global transaction does (tx.CommitAsync or " +
            "tx.RollbackAsync prepares and finishes every branch). SaveChanges already writes inside the branch's transaction.");
}
