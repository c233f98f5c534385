using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Npgsql.EntityFrameworkCore.PostgreSQL.Infrastructure;

namespace TwoPC.Participants.PostgreSql.EntityFrameworkCore;

/// <summary>
/// Entity Framework Core in a <see cref="PostgresBranch"/>: a <see cref="DbContext"/> that works on the branch's
/// connection and inside its transaction, so <c>SaveChanges</c> writes within the branch and the global transaction
/// commits or rolls the writes back with its other branches.
/// <code>
/// var branch = await orders.EnlistAsync(tx);
/// await using var db = await branch.CreateDbContextAsync&lt;OrdersContext&gt;(options =&gt; new(options));
/// db.Orders.Add(order);
/// await db.SaveChangesAsync();   // written in the branch's transaction, not committed
/// await tx.CommitAsync();        // PREPARE TRANSACTION, then COMMIT PREPARED in every branch
/// </code>
/// </summary>
/// <remarks>
/// The context neither owns nor closes the branch's connection, and never commits or rolls back its transaction:
/// with <see cref="UseTwoPCBranch(DbContextOptionsBuilder, PostgresBranch, Action{NpgsqlDbContextOptionsBuilder}?)"/>
/// (which <see cref="CreateDbContextAsync"/> uses) <c>Database.CommitTransaction</c>, <c>RollbackTransaction</c> and
/// <c>BeginTransaction</c> throw <see cref="InvalidOperationException"/> (a commit there would end the branch before it
/// was prepared). Savepoints, which <c>SaveChanges</c> itself uses inside an external transaction, are allowed.
/// </remarks>
public static class PostgresBranchDbContextExtensions
{
    /// <summary>
    /// Configures the context for the branch: <c>UseNpgsql(branch.Connection)</c> (the context does not own the
    /// connection) and a guard that refuses to begin, commit or roll back a transaction through the context. Then
    /// enlist the context with <see cref="EnlistAsync"/>, or use <see cref="CreateDbContextAsync"/> for both.
    /// </summary>
    /// <param name="builder">The context's options builder.</param>
    /// <param name="branch">The branch whose connection and transaction the context uses.</param>
    /// <param name="npgsqlOptions">Npgsql settings of the context, if any.</param>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("ApiDesign", "RS0026:Do not add multiple public overloads with optional parameters", Justification = "The generic and non-generic builders, as UseNpgsql has them; a call is never ambiguous.")]
    public static DbContextOptionsBuilder UseTwoPCBranch(this DbContextOptionsBuilder builder, PostgresBranch branch, Action<NpgsqlDbContextOptionsBuilder>? npgsqlOptions = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(branch);
        return builder.UseNpgsql(branch.Connection, npgsqlOptions).AddInterceptors(BranchTransactionGuard.Instance);
    }

    /// <inheritdoc cref="UseTwoPCBranch(DbContextOptionsBuilder, PostgresBranch, Action{NpgsqlDbContextOptionsBuilder}?)"/>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("ApiDesign", "RS0026:Do not add multiple public overloads with optional parameters", Justification = "The generic and non-generic builders, as UseNpgsql has them; a call is never ambiguous.")]
    public static DbContextOptionsBuilder<TContext> UseTwoPCBranch<TContext>(this DbContextOptionsBuilder<TContext> builder, PostgresBranch branch, Action<NpgsqlDbContextOptionsBuilder>? npgsqlOptions = null)
        where TContext : DbContext =>
        (DbContextOptionsBuilder<TContext>)UseTwoPCBranch((DbContextOptionsBuilder)builder, branch, npgsqlOptions);

    /// <summary>
    /// Makes the branch's transaction the context's current transaction (<c>Database.UseTransactionAsync</c>): from now on
    /// <c>SaveChanges</c> and queries run inside the branch. The context must be on the branch's connection
    /// (<see cref="UseTwoPCBranch(DbContextOptionsBuilder, PostgresBranch, Action{NpgsqlDbContextOptionsBuilder}?)"/> or
    /// <c>UseNpgsql(branch.Connection)</c>).
    /// </summary>
    /// <param name="database">The context's <c>Database</c>.</param>
    /// <param name="branch">The branch to work in.</param>
    /// <param name="cancellationToken">Cancels the enlistment.</param>
    /// <exception cref="InvalidOperationException">The context uses another connection, or already has another transaction.</exception>
    public static async Task EnlistAsync(this DatabaseFacade database, PostgresBranch branch, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(database);
        ArgumentNullException.ThrowIfNull(branch);
        if (!ReferenceEquals(database.GetDbConnection(), branch.Connection))
        {
            throw new InvalidOperationException(
                $"The context is not on the connection of branch {branch.Xid}: configure it with UseTwoPCBranch(branch) (or UseNpgsql(branch.Connection)) before enlisting it.");
        }

        await database.UseTransactionAsync(branch.Transaction, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Creates a context configured with <see cref="UseTwoPCBranch{TContext}"/> and enlisted in the branch
    /// (<see cref="EnlistAsync"/>): <c>await using var db = await branch.CreateDbContextAsync&lt;OrdersContext&gt;(o =&gt; new(o));</c>.
    /// Dispose it when done; that leaves the branch's connection and transaction to the global transaction.
    /// </summary>
    /// <typeparam name="TContext">The context type.</typeparam>
    /// <param name="branch">The branch to work in.</param>
    /// <param name="create">Creates the context from its options (usually its constructor).</param>
    /// <param name="cancellationToken">Cancels the enlistment.</param>
    public static async Task<TContext> CreateDbContextAsync<TContext>(this PostgresBranch branch, Func<DbContextOptions<TContext>, TContext> create, CancellationToken cancellationToken = default)
        where TContext : DbContext
    {
        ArgumentNullException.ThrowIfNull(branch);
        ArgumentNullException.ThrowIfNull(create);
        var context = create(new DbContextOptionsBuilder<TContext>().UseTwoPCBranch(branch).Options);
        try
        {
            await context.Database.EnlistAsync(branch, cancellationToken).ConfigureAwait(false);
            return context;
        }
        catch
        {
            await context.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }
}
