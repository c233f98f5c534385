using Microsoft.EntityFrameworkCore;
using TwoPC.Participants.PostgreSql;
using TwoPC.Participants.PostgreSql.EntityFrameworkCore;
using TwoPC.Protocol;

namespace TwoPC.Samples.Readme;

/// <summary>README "Entity Framework Core" and the TwoPC.Participants.PostgreSql.EntityFrameworkCore package README.</summary>
public static class EntityFrameworkSnippets
{
    /// <summary>A ledger entry (table <c>entries (id text, amount int)</c>).</summary>
    public sealed class Entry
    {
        /// <summary>The key.</summary>
        public required string Id { get; set; }

        /// <summary>The amount.</summary>
        public int Amount { get; set; }
    }

    /// <summary>The context of both databases.</summary>
    public sealed class ShopContext(DbContextOptions<ShopContext> options) : DbContext(options)
    {
        /// <summary>The entries.</summary>
        public DbSet<Entry> Entries => Set<Entry>();

        /// <inheritdoc />
        protected override void OnModelCreating(ModelBuilder modelBuilder)
        {
            ArgumentNullException.ThrowIfNull(modelBuilder);
            modelBuilder.Entity<Entry>(e =>
            {
                e.ToTable("entries");
                e.HasKey(x => x.Id);
                e.Property(x => x.Id).HasColumnName("id");
                e.Property(x => x.Amount).HasColumnName("amount");
            });
        }
    }

    /// <summary>An order.</summary>
    public sealed class Order
    {
        /// <summary>The key.</summary>
        public required string Id { get; set; }
    }

    /// <summary>The orders database's context.</summary>
    public sealed class OrdersContext(DbContextOptions<OrdersContext> options) : DbContext(options)
    {
        /// <summary>The orders.</summary>
        public DbSet<Order> Orders => Set<Order>();
    }

    /// <summary>README.md, section "Entity Framework Core": two rows in each database, not committed yet (run by the EF Core tests).</summary>
    public static async Task<(PostgresBranch Order, PostgresBranch Payment)> WriteInTwoContextsAsync(GlobalTransaction tx, PostgresResourceManager orders, PostgresResourceManager payments)
    {
        #region readme
        var order = await orders.EnlistAsync(tx);
        await using (var db = await order.CreateDbContextAsync<ShopContext>(options => new(options)))
        {
            db.Entries.AddRange(new Entry { Id = "o-1", Amount = 10 }, new Entry { Id = "o-1b", Amount = 0 });
            await db.SaveChangesAsync();   // in the branch's transaction: not committed yet
        }

        var payment = await payments.EnlistAsync(tx);
        await using (var db = new ShopContext(new DbContextOptionsBuilder<ShopContext>().UseTwoPCBranch(payment).Options))
        {
            await db.Database.EnlistAsync(payment);
            db.Entries.AddRange(new Entry { Id = "p-1", Amount = -10 }, new Entry { Id = "p-1b", Amount = 0 });
            await db.SaveChangesAsync();
        }
        #endregion
        return (order, payment);
    }

    /// <summary>Participants/TwoPC.Participants.PostgreSql.EntityFrameworkCore/README.md.</summary>
    public static async Task PackageAsync(GlobalTransaction tx, PostgresResourceManager orders, Order order)
    {
        #region package
        // using TwoPC.Participants.PostgreSql.EntityFrameworkCore;
        var branch = await orders.EnlistAsync(tx);
        await using var db = await branch.CreateDbContextAsync<OrdersContext>(options => new(options));
        db.Orders.Add(order);
        await db.SaveChangesAsync();   // in the branch's transaction, not committed
        await tx.CommitAsync();        // PREPARE TRANSACTION / COMMIT PREPARED in every branch
        #endregion
    }
}
