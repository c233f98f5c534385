using Npgsql;

namespace TwoPC.Durability.PostgreSql;

// Group commit, as in the file WAL: writers queue their record under a short lock and await the batch's one
// TaskCompletionSource; a flusher swaps the queue out and writes it with one fenced statement (one round trip, one
// server commit), while the next batch fills. Unlike a local fsync, a batch's round trip is mostly waiting, so two
// flushers (two connections) keep one batch in flight while the other is being committed; each batch is fenced on its
// own, and records of different transactions do not depend on each other's order. ENDs never wait: the flusher deletes them in batches, in the same
// statement as the next writes, or alone (without waiting for the server's WAL flush) when no write is queued.
public sealed partial class PostgreSqlTransactionLog
{
    private readonly Lock _sync = new();
    private readonly SemaphoreSlim _wake = new(0);
    private List<PendingWrite> _writes = [];
    private TaskCompletionSource? _writesDone;
    private List<string> _ends = [];
    private bool _wakePending;
    private bool _stopping;
    private long _batchCount;

    /// <summary>How many batches may be in flight at once (one connection each).</summary>
    internal const int Flushers = 2;

    private sealed record PendingWrite(string Gtrid, bool IsDecision, DateTime At, byte[] Payload);

    private ValueTask Enqueue(PendingWrite write)
    {
        lock (_sync)
        {
            if (_failure is { } failure)
            {
                return ValueTask.FromException(FailedException(failure));
            }

            ObjectDisposedException.ThrowIf(_stopping, this);
            _writes.Add(write);
            var done = _writesDone ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            Wake();
            return new ValueTask(done.Task);
        }
    }

    // Under _sync.
    private void Wake()
    {
        if (!_wakePending)
        {
            _wakePending = true;
            _wake.Release();
        }
    }

    private async Task FlushLoopAsync()
    {
        while (true)
        {
            await _wake.WaitAsync().ConfigureAwait(false);
            List<PendingWrite> writes;
            TaskCompletionSource? done;
            List<string> ends;
            bool stopping;
            lock (_sync)
            {
                _wakePending = false;
                writes = _writes;
                done = _writesDone;
                ends = _ends;
                stopping = _stopping;
                _writes = [];
                _writesDone = null;
                _ends = [];
            }

            if (writes.Count > 0 && done is not null)
            {
                try
                {
                    await WriteBatchAsync(writes, ends).ConfigureAwait(false);
                    done.TrySetResult();
                }
                catch (Exception ex)
                {
                    done.TrySetException(Fail(ex, "decision batch"));
                }
            }
            else if (ends.Count > 0 && Failure is null)
            {
                try
                {
                    await DeleteEndedAsync(ends).ConfigureAwait(false);
                }
                catch (Exception ex)
                {
                    Fail(ex, "deleting ended transactions");
                }
            }

            // After the stop, nothing more is queued: this pass wrote the rest.
            if (stopping || Failure is not null)
            {
                return;
            }
        }
    }

    /// <summary>Test seam: called before each attempt's batch insert with the attempt number and a way to run the same insert on another connection.</summary>
    internal Func<int, Func<Task>, Task>? BatchAttemptHook { get; set; }

    private async Task WriteBatchAsync(List<PendingWrite> writes, List<string> ends)
    {
        var started = _timeProvider.GetTimestamp();

        // One row per transaction and table (a later record of the same transaction replaces an earlier one).
        var decisions = new Dictionary<string, PendingWrite>(StringComparer.Ordinal);
        var heuristics = new Dictionary<string, PendingWrite>(StringComparer.Ordinal);
        foreach (var write in writes)
        {
            (write.IsDecision ? decisions : heuristics)[write.Gtrid] = write;
        }

        await RunAsync("decision batch", async (connection, attempt, ct) =>
        {
            var toWrite = decisions.Values.ToList();
            if (attempt > 1 && toWrite.Count > 0)
            {
                // The previous attempt's commit outcome is unknown: keep what is stored, write the rest again.
                var present = await PresentAsync(connection, decisions.Keys, ct).ConfigureAwait(false);
                toWrite.RemoveAll(w => present.Contains(w.Gtrid));
                _logger.BatchRecovered(_nodeText, present.Count, decisions.Count);
                if (toWrite.Count == 0 && heuristics.Count == 0)
                {
                    return 0;
                }
            }

            NpgsqlCommand Insert(NpgsqlConnection on) => Command(
                on,
                _sql.InsertBatch,
                _nodeText,
                (long)_epoch,
                toWrite.Select(w => w.Gtrid).ToArray(),
                toWrite.Select(w => w.At).ToArray(),
                toWrite.Select(w => w.Payload).ToArray(),
                heuristics.Keys.ToArray(),
                heuristics.Values.Select(w => w.Payload).ToArray(),
                ends.Distinct(StringComparer.Ordinal).ToArray());

            if (BatchAttemptHook is { } hook)
            {
                // Test seam: the test may fail this attempt (a lost answer) or land this insert on another connection
                // first (an earlier attempt whose commit arrives late), to replay the interleavings of a lost answer.
                await hook(attempt, async () =>
                {
                    var other = await _dataSource.OpenConnectionAsync(ct).ConfigureAwait(false);
                    await using (other.ConfigureAwait(false))
                    {
                        await using var late = Insert(other);
                        await late.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
                    }
                }).ConfigureAwait(false);
            }

            await using var command = Insert(connection);
            await command.PrepareAsync(ct).ConfigureAwait(false); // kept on the pooled connection: planned once
            bool refused;
            await using (var reader = await command.ExecuteReaderAsync(ct).ConfigureAwait(false))
            {
                await reader.ReadAsync(ct).ConfigureAwait(false);
                refused = reader.GetInt64(0) == 0;
            }

            if (!refused)
            {
                return 0;
            }

            if (attempt > 1)
            {
                // Refused after an attempt whose commit outcome is unknown. That attempt may have stored the batch just
                // before the takeover (which waited for its FOR SHARE lock): the new epoch is visible, so it has ended,
                // and what is stored now is final. All stored: durable (the taker re-drives it as well). Otherwise the
                // refusal is not certain for the whole batch, and "fenced" would make the protocol roll back branches
                // the taker may commit: fail without claiming it, so the transactions stay in doubt for recovery.
                var stored = await PresentAsync(connection, decisions.Keys, ct).ConfigureAwait(false);
                if (decisions.Count > 0 && stored.Count == decisions.Count && heuristics.Count == 0)
                {
                    _logger.BatchRecovered(_nodeText, stored.Count, decisions.Count);
                    return 0;
                }

                if (stored.Count > 0 || heuristics.Count > 0)
                {
                    throw new TransactionLogFailedException($"Node '{_nodeText}' was fenced while a batch's commit outcome was unknown ({stored.Count} of {decisions.Count} decisions stored); its transactions stay in doubt until recovery resolves them.");
                }
            }

            throw new NodeFencedException($"The shared transaction log refused a batch of {toWrite.Count} decisions and {heuristics.Count} heuristics of node '{_nodeText}': its epoch {_epoch} is no longer current (another node took it over).");
        }, CancellationToken.None).ConfigureAwait(false);

        Interlocked.Increment(ref _batchCount);
        _metrics.Batches.Add(1);
        _metrics.BatchRecords.Record(writes.Count);
        _metrics.FlushDuration.Record(_timeProvider.GetElapsedTime(started).TotalSeconds);
    }

    private async Task<HashSet<string>> PresentAsync(NpgsqlConnection connection, IEnumerable<string> gtrids, CancellationToken cancellationToken)
    {
        var present = new HashSet<string>(StringComparer.Ordinal);
        await using var check = Command(connection, _sql.PresentDecisions, (object)gtrids.ToArray());
        await using var reader = await check.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            present.Add(reader.GetString(0));
        }

        return present;
    }

    // Compaction: an ENDed transaction's decision and heuristic are deleted. Not fenced: a decision whose branches all
    // acknowledged may be removed by any node (a takeover's re-drive ENDs the dead node's decisions).
    private async Task DeleteEndedAsync(List<string> ends)
    {
        var ids = ends.Distinct(StringComparer.Ordinal).ToArray();
        await RunAsync("deleting ended transactions", async (connection, attempt, ct) =>
        {
            await using var command = Command(connection, _sql.DeleteEnded, (object)ids);
            return await command.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        }, CancellationToken.None).ConfigureAwait(false);
    }
}
