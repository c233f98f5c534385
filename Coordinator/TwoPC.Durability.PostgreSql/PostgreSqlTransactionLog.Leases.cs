using Npgsql;
using TwoPC.Transactions;
using TwoPC.Wal;

namespace TwoPC.Durability.PostgreSql;

// Leases on the database clock, their renewal, takeover of expired nodes, and status queries for any transaction.
public sealed partial class PostgreSqlTransactionLog
{
    /// <inheritdoc />
    public async ValueTask<IReadOnlyList<NodeLease>> FindTakeoverCandidatesAsync(CancellationToken cancellationToken)
    {
        EnsureOpen();
        return await RunAsync<IReadOnlyList<NodeLease>>("finding takeover candidates", async (connection, attempt, ct) =>
        {
            var candidates = new List<NodeLease>();
            await using var command = Command(connection, _sql.Candidates, _nodeText);
            await using var reader = await command.ExecuteReaderAsync(ct).ConfigureAwait(false);
            while (await reader.ReadAsync(ct).ConfigureAwait(false))
            {
                candidates.Add(new NodeLease(NodeId.Parse(reader.GetString(0)), (ulong)reader.GetInt64(1), reader.GetFieldValue<DateTimeOffset>(2)));
            }

            return candidates;
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    /// <exception cref="TransactionLogFailedException">This log has failed (or was fenced): it takes nothing over.</exception>
    public async ValueTask<TakeoverState?> TryTakeOverAsync(NodeId node, CancellationToken cancellationToken)
    {
        EnsureOpen();
        if (Failure is { } failure)
        {
            throw FailedException(failure);
        }

        var nodeText = node.Value;
        var epoch = await RunAsync("taking over a node", async (connection, attempt, ct) =>
        {
            await using var command = Command(connection, _sql.TakeOver, nodeText, _nodeText, (long)_epoch);
            return await command.ExecuteScalarAsync(ct).ConfigureAwait(false) is long raised ? (ulong?)raised : null;
        }, cancellationToken).ConfigureAwait(false);
        if (epoch is not { } fencedEpoch)
        {
            return null;
        }

        // Only now, after the epoch raise committed, is every decision the node will ever store visible.
        var (pending, heuristics) = await ReadNodeAsync(nodeText, cancellationToken).ConfigureAwait(false);
        _metrics.Takeovers.Add(1);
        _logger.TookOver(_nodeText, nodeText, fencedEpoch, pending.Count, heuristics.Count);
        return new TakeoverState(node, fencedEpoch, pending, heuristics);
    }

    /// <inheritdoc />
    public async ValueTask<SharedDecision> FindDecisionAsync(GlobalTransactionId transactionId, CancellationToken cancellationToken)
    {
        EnsureOpen();
        var gtrid = transactionId.ToString();
        var node = transactionId.Node.Value;
        return await RunAsync("finding a decision", async (connection, attempt, ct) =>
        {
            await using var command = Command(connection, _sql.FindDecision, gtrid, node);
            await using var reader = await command.ExecuteReaderAsync(ct).ConfigureAwait(false);
            await reader.ReadAsync(ct).ConfigureAwait(false);
            if (reader.GetBoolean(0))
            {
                return SharedDecision.Committed;
            }

            return !reader.IsDBNull(1) && (ulong)reader.GetInt64(1) > transactionId.Epoch ? SharedDecision.Absent : SharedDecision.Undetermined;
        }, cancellationToken).ConfigureAwait(false);
    }

    private async Task CreateSchemaAsync(CancellationToken cancellationToken) =>
        await RunAsync("creating the schema", async (connection, attempt, ct) =>
        {
            await using var transaction = await connection.BeginTransactionAsync(ct).ConfigureAwait(false);
            await using (var command = Command(connection, _sql.SchemaLock))
            {
                await command.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            }

            await using (var command = Command(connection, _sql.CreateSchema))
            {
                await command.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            }

            await transaction.CommitAsync(ct).ConfigureAwait(false);
            return 0;
        }, cancellationToken).ConfigureAwait(false);

    /// <summary>Takes the node's lease under a new epoch, waiting for a live lease of the same node id to lapse.</summary>
    private async Task<(ulong Epoch, DateTimeOffset ExpiresAt)> TakeLeaseAsync(string node, CancellationToken cancellationToken)
    {
        var started = _timeProvider.GetTimestamp();
        var poll = TimeSpan.FromTicks(Math.Min(_renewInterval.Ticks, TimeSpan.FromMilliseconds(500).Ticks));
        var waiting = false;
        while (true)
        {
            var taken = await RunAsync("taking the lease", async (connection, attempt, ct) =>
            {
                foreach (var sql in new[] { _sql.InsertNode, _sql.StartEpoch })
                {
                    await using var command = Command(connection, sql, node, _leaseDuration);
                    await using var reader = await command.ExecuteReaderAsync(ct).ConfigureAwait(false);
                    if (await reader.ReadAsync(ct).ConfigureAwait(false))
                    {
                        return ((ulong)reader.GetInt64(0), reader.GetFieldValue<DateTimeOffset>(1));
                    }
                }

                return ((ulong, DateTimeOffset)?)null;
            }, cancellationToken).ConfigureAwait(false);
            if (taken is { } lease)
            {
                return lease;
            }

            if (_timeProvider.GetElapsedTime(started) >= _openTimeout)
            {
                _logger.LeaseStillHeld(node, _openTimeout);
                throw new TransactionLogLockedException(
                    $"Coordinator node '{node}' still holds a live lease on the shared transaction log after {_openTimeout}: another coordinator runs with this node id. Stop it, or give this coordinator another node id.",
                    new TimeoutException($"The lease of node '{node}' did not lapse within {_openTimeout}."));
            }

            if (!waiting)
            {
                waiting = true;
                _logger.WaitingForLease(node);
            }

            await Task.Delay(poll, _timeProvider, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task<(IReadOnlyList<CommitDecision> Pending, IReadOnlyList<HeuristicRecord> Heuristics)> ReadNodeAsync(string node, CancellationToken cancellationToken) =>
        await RunAsync("reading a node's decisions", async (connection, attempt, ct) =>
        {
            var pending = new List<CommitDecision>();
            await using (var command = Command(connection, _sql.SelectDecisions, node))
            await using (var reader = await command.ExecuteReaderAsync(ct).ConfigureAwait(false))
            {
                while (await reader.ReadAsync(ct).ConfigureAwait(false))
                {
                    pending.Add(TransactionRecordCodec.DecodeCommitDecision(reader.GetFieldValue<byte[]>(0)));
                }
            }

            var heuristics = new List<HeuristicRecord>();
            await using (var command = Command(connection, _sql.SelectHeuristics, node))
            await using (var reader = await command.ExecuteReaderAsync(ct).ConfigureAwait(false))
            {
                while (await reader.ReadAsync(ct).ConfigureAwait(false))
                {
                    heuristics.Add(TransactionRecordCodec.DecodeHeuristic(reader.GetFieldValue<byte[]>(0)));
                }
            }

            pending.Sort((x, y) => FileTransactionLog.IdComparer.Instance.Compare(x.TransactionId, y.TransactionId));
            heuristics.Sort((x, y) => FileTransactionLog.IdComparer.Instance.Compare(x.TransactionId, y.TransactionId));
            return ((IReadOnlyList<CommitDecision>)pending, (IReadOnlyList<HeuristicRecord>)heuristics);
        }, cancellationToken).ConfigureAwait(false);

    private async Task RenewLoopAsync(CancellationToken cancellationToken)
    {
        try
        {
            while (true)
            {
                await Task.Delay(_renewInterval, _timeProvider, cancellationToken).ConfigureAwait(false);
                if (RenewalPaused)
                {
                    continue;
                }

                await RenewAsync(cancellationToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Disposed, or the log failed.
        }
        catch (Exception ex)
        {
            Fail(ex, "lease renewal");
        }
    }

    /// <summary>Renews the lease now; a renewal refused by the epoch check fences the node.</summary>
    internal async Task RenewAsync(CancellationToken cancellationToken)
    {
        var expiresAt = await RunAsync("renewing the lease", async (connection, attempt, ct) =>
        {
            await using var command = Command(connection, _sql.Renew, _nodeText, (long)_epoch, _leaseDuration);
            return await command.ExecuteScalarAsync(ct).ConfigureAwait(false) is DateTime expires
                ? new DateTimeOffset(DateTime.SpecifyKind(expires, DateTimeKind.Utc))
                : (DateTimeOffset?)null;
        }, cancellationToken).ConfigureAwait(false);
        if (expiresAt is not { } renewed)
        {
            throw new NodeFencedException($"The shared transaction log refused to renew the lease of node '{_nodeText}': its epoch {_epoch} is no longer current (another node took it over).");
        }

        Volatile.Write(ref _lease, new NodeLease(_node!.Value, _epoch, renewed));
        _metrics.LeaseRenewals.Add(1);
        _logger.Renewed(_nodeText, _epoch, renewed);
    }

    private async Task<bool> TryReleaseLeaseAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5), _timeProvider);
        try
        {
            var connection = await _dataSource.OpenConnectionAsync(timeout.Token).ConfigureAwait(false);
            await using (connection.ConfigureAwait(false))
            {
                await using var command = Command(connection, _sql.Release, _nodeText, (long)_epoch);
                return await command.ExecuteNonQueryAsync(timeout.Token).ConfigureAwait(false) == 1;
            }
        }
        catch (Exception ex) when (ex is NpgsqlException or OperationCanceledException or IOException or TimeoutException)
        {
            return false; // the lease lapses on its own
        }
    }
}
