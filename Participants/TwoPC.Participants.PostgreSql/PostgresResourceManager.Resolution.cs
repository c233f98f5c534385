using Npgsql;
using TwoPC.Transactions;

namespace TwoPC.Participants.PostgreSql;

// Phase 2 by XID when no transaction is prepared under the gid: what PostgreSQL's record of the branch's transaction
// id (pg_xact_status) says became of it, the ids remembered for calls without recovery data, and the marker rows of
// older versions.
public sealed partial class PostgresResourceManager
{
    /// <summary>Remembers a prepared branch's transaction id for phase-2 calls that bring no recovery data (a remote
    /// participant's coordinator repeating a commit whose answer was lost). Bounded: the oldest are forgotten first.</summary>
    internal void RememberPrepared(Xid xid, ulong transactionId)
    {
        var gid = xid.ToString();
        if (_prepared.TryAdd(gid, transactionId))
        {
            _preparedOrder.Enqueue(gid);
            while (_preparedOrder.Count > RememberedCapacity && _preparedOrder.TryDequeue(out var oldest))
            {
                _prepared.TryRemove(oldest, out _);
            }
        }
        else
        {
            _prepared[gid] = transactionId;
        }
    }

    /// <summary>
    /// A one-phase COMMIT of transaction <paramref name="transactionId"/> whose answer was lost: asks PostgreSQL, on
    /// another connection, until the transaction has finished (a little while) — never a guess.
    /// </summary>
    internal async Task<BranchOutcome> ResolveOnePhaseAsync(Xid xid, ulong transactionId, CancellationToken cancellationToken)
    {
        // Its own budget: the caller's token may be what interrupted the COMMIT.
        using var budget = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken.IsCancellationRequested ? CancellationToken.None : cancellationToken);
        budget.CancelAfter(OnePhaseResolveBudget);
        string? status;
        try
        {
            status = await _resolveRetry.ExecuteAsync(
                static async (state, ct) =>
                {
                    var answer = await state.rm.TransactionStatusAsync(state.transactionId, ct).ConfigureAwait(false);
                    return answer == "in progress" ? throw new StillInProgressException() : answer;
                },
                (rm: this, transactionId),
                budget.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (budget.IsCancellationRequested && ex is OperationCanceledException or StillInProgressException || IsUnreachable(ex))
        {
            throw new PostgresOutcomeUnknownException(
                $"The COMMIT of branch {xid} (transaction {transactionId}) was interrupted and PostgreSQL could not be asked, or had not finished it, within {OnePhaseResolveBudget.TotalSeconds:0} s: its outcome is unknown.", ex);
        }

        var outcome = status switch
        {
            "committed" => BranchOutcome.Committed,
            "aborted" => BranchOutcome.RolledBack,
            _ => BranchOutcome.Unknown,
        };
        _logger.OnePhaseResolved(xid, transactionId, status ?? "null", outcome);
        CountLookup("one-phase", outcome);
        return outcome;
    }

    /// <summary><c>pg_xact_status</c>: committed, aborted, in progress, or <see langword="null"/> when PostgreSQL no longer
    /// knows (older than its commit-status horizon, or not a transaction of this server).</summary>
    private async Task<string?> TransactionStatusAsync(ulong transactionId, CancellationToken cancellationToken)
    {
        var connection = await DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var connectionScope = connection.ConfigureAwait(false);
        var command = new NpgsqlCommand("SELECT pg_xact_status($1::text::xid8)", connection);
        await using var commandScope = command.ConfigureAwait(false);
        command.Parameters.AddWithValue(transactionId.ToString(System.Globalization.CultureInfo.InvariantCulture));
        try
        {
            return await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) as string;
        }
        catch (PostgresException ex) when (ex.SqlState == InvalidParameterValue)
        {
            // "transaction ID … is in the future": not a transaction of this server as it is now (restored from a backup?).
            _logger.TransactionIdFromTheFuture(Name, transactionId, ex.MessageText);
            return null;
        }
    }

    /// <summary>No prepared transaction under the gid: PostgreSQL's record of its transaction id says what became of it.</summary>
    private async Task<BranchOutcome> FinishedAlreadyAsync(Xid xid, string operation, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken)
    {
        BranchOutcome outcome;
        string evidence;
        if ((PostgresRecoveryData.TryDecode(recoveryData.Span) ?? Remembered(xid)) is { } transactionId)
        {
            var status = await TransactionStatusAsync(transactionId, cancellationToken).ConfigureAwait(false);
            outcome = status switch
            {
                "committed" => BranchOutcome.Committed,
                "aborted" => BranchOutcome.RolledBack,

                // Being finished by another session right now: ask again (the coordinator retries).
                "in progress" => throw new PostgresOutcomeUnknownException($"Branch {xid}: no prepared transaction under its gid, but its transaction {transactionId} is still in progress; asked again later."),
                _ => BranchOutcome.Unknown,
            };
            evidence = $"pg_xact_status({transactionId}) is {status ?? "null (PostgreSQL no longer knows)"}";
        }
        else
        {
            var connection = await DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
            await using var connectionScope = connection.ConfigureAwait(false);
            if (await LegacyMarkerExistsAsync(connection, xid, cancellationToken).ConfigureAwait(false))
            {
                outcome = BranchOutcome.Committed;
                evidence = "no transaction id in the recovery data; a marker row of an older version is present";
            }
            else
            {
                // Presumed abort for a rollback; a commit cannot tell a branch committed long ago from one someone rolled back.
                outcome = operation == "COMMIT" ? BranchOutcome.Unknown : BranchOutcome.RolledBack;
                evidence = "no transaction id in the recovery data (a decision logged by an older version) and no marker row";
            }
        }

        if ((operation == "COMMIT" && outcome == BranchOutcome.Committed) || (operation == "ROLLBACK" && outcome == BranchOutcome.RolledBack))
        {
            _logger.AlreadyDone(xid, operation, outcome, evidence); // the expected repeat: nothing anyone must look at
        }
        else
        {
            _logger.AlreadyResolved(xid, operation, evidence, outcome);
        }

        CountLookup(operation == "COMMIT" ? "commit-prepared" : "rollback-prepared", outcome);
        return outcome;
    }

    /// <summary>The 64-bit id of a running (prepared) transaction whose 32-bit xid is <paramref name="xid"/>: the one
    /// just below <paramref name="nextXid8"/> (a running transaction is less than 2^31 transactions old).</summary>
    internal static ulong WithEpoch(ulong xid, ulong nextXid8)
    {
        var candidate = (nextXid8 & 0xFFFF_FFFF_0000_0000UL) | (xid & 0xFFFF_FFFFUL);
        return candidate >= nextXid8 && candidate >= 1UL << 32 ? candidate - (1UL << 32) : candidate;
    }

    private static ulong ParseId(string text) => ulong.Parse(text, System.Globalization.CultureInfo.InvariantCulture);

    private void CountLookup(string operation, BranchOutcome outcome) => _lookups.Add(
        1,
        new KeyValuePair<string, object?>("twopc.resource_manager", Name),
        new KeyValuePair<string, object?>("twopc.operation", operation),
        new KeyValuePair<string, object?>("twopc.branch.outcome", outcome.ToString()));

    /// <summary>
    /// Whether a commit or rollback of <paramref name="xid"/>, no longer prepared, can be answered from evidence: its
    /// transaction id is in <paramref name="recoveryData"/> or remembered from its prepare or a recovery scan.
    /// </summary>
    internal bool KnowsTransactionOf(Xid xid, ReadOnlySpan<byte> recoveryData) =>
        (PostgresRecoveryData.TryDecode(recoveryData) ?? Remembered(xid)) is not null;

    private ulong? Remembered(Xid xid) => _prepared.TryGetValue(xid.ToString(), out var id) ? id : null;

    private async Task<bool> LegacyMarkersExistAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        var exists = new NpgsqlCommand($"SELECT to_regclass('{_legacyMarkers}') IS NOT NULL", connection);
        await using var existsScope = exists.ConfigureAwait(false);
        return (bool)(await exists.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
    }

    private async Task<bool> LegacyMarkerExistsAsync(NpgsqlConnection connection, Xid xid, CancellationToken cancellationToken)
    {
        if (!await LegacyMarkersExistAsync(connection, cancellationToken).ConfigureAwait(false))
        {
            return false;
        }

        var command = new NpgsqlCommand($"SELECT EXISTS (SELECT 1 FROM {_legacyMarkers} WHERE gid = @gid)", connection);
        await using var commandScope = command.ConfigureAwait(false);
        command.Parameters.AddWithValue("gid", xid.ToString());
        return (bool)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
    }

    /// <summary>The transaction is still finishing: ask again.</summary>
    private sealed class StillInProgressException : Exception
    {
        public StillInProgressException() : base("The transaction is still in progress.") { }
    }
}
