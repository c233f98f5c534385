using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using Npgsql;
using TwoPC.Participants.PostgreSql;
using TwoPC.Transactions;

namespace TwoPC.Participants.Remote;

/// <summary>The default local resource: a PostgreSQL database through <see cref="PostgresResourceManager"/>.</summary>
internal sealed class PostgresLocalResource(PostgresResourceManager resourceManager) : ILocalResource
{
    public PostgresResourceManager ResourceManager { get; } = resourceManager;

    /// <summary>Creates the resource manager (fails fast when <c>max_prepared_transactions</c> is 0).</summary>
    public static async Task<ILocalResource> CreateAsync(string name, NpgsqlDataSource dataSource, ILoggerFactory loggers, IMeterFactory? meterFactory, CancellationToken cancellationToken) =>
        new PostgresLocalResource(await PostgresResourceManager.CreateAsync(name, dataSource, loggerFactory: loggers, meterFactory: meterFactory, cancellationToken: cancellationToken).ConfigureAwait(false));

    public async ValueTask<ILocalBranch> BeginBranchAsync(Xid xid, DateTimeOffset deadline, CancellationToken cancellationToken) =>
        new PostgresLocalBranch(await ResourceManager.BeginBranchAsync(xid, deadline, cancellationToken).ConfigureAwait(false));

    public ValueTask<bool> IsPreparedAsync(Xid xid, CancellationToken cancellationToken) => ResourceManager.IsPreparedAsync(xid, cancellationToken);

    public ValueTask<BranchOutcome> CommitAsync(Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken) =>
        ResourceManager.CommitAsync(xid, recoveryData, cancellationToken);

    public ValueTask<BranchOutcome> RollbackAsync(Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken) =>
        ResourceManager.RollbackAsync(xid, recoveryData, cancellationToken);

    public ValueTask<IReadOnlyCollection<InDoubtBranch>> RecoverAsync(CancellationToken cancellationToken) => ResourceManager.RecoverAsync(cancellationToken);

    public bool IsResourceFailure(Exception exception) => exception is NpgsqlException;

    public void Dispose() => ResourceManager.Dispose();
}

/// <summary>A branch's PostgreSQL transaction.</summary>
internal sealed class PostgresLocalBranch(PostgresBranch branch) : ILocalBranch
{
    public PostgresBranch Branch { get; } = branch;

    public int SessionId => Branch.SessionId;

    public ValueTask<Vote> PrepareAsync(CancellationToken cancellationToken) => Branch.PrepareAsync(cancellationToken);

    public Task TerminateSessionAsync(CancellationToken cancellationToken) => Branch.TerminateSessionAsync(cancellationToken);

    public ValueTask DisposeAsync() => Branch.DisposeAsync();
}
