using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using Microsoft.Extensions.Logging;
using TwoPC.Diagnostics;
using TwoPC.Durability;
using TwoPC.Participants;
using TwoPC.Transactions;

namespace TwoPC.Benchmarks;

/// <summary>What the recovery benchmark measures with: the coordinator's counters, its warnings, and the log's open.</summary>
public static partial class RecoveryBenchmark
{
    private sealed record CounterSnapshot(long Orphans, TimeSpan FirstOrphan, TimeSpan LastOrphan, long Commits, TimeSpan LastCommit);

    /// <summary>When the coordinator's recovery counters moved (their first and last increment).</summary>
    private sealed class RecoveryCounters : IDisposable
    {
        private readonly MeterListener _listener = new();
        private readonly Lock _gate = new();
        private Stopwatch _clock = new();
        private long _orphans;
        private long _commits;
        private TimeSpan _firstOrphan;
        private TimeSpan _lastOrphan;
        private TimeSpan _lastCommit;

        public RecoveryCounters()
        {
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == TwoPCTelemetry.MeterName && instrument.Name is "twopc.recovery.orphans_rolled_back" or "twopc.recovery.commits")
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            _listener.SetMeasurementEventCallback<long>((instrument, value, _, _) =>
            {
                var now = _clock.Elapsed;
                lock (_gate)
                {
                    if (instrument.Name == "twopc.recovery.orphans_rolled_back")
                    {
                        _firstOrphan = _orphans == 0 ? now : _firstOrphan;
                        _orphans += value;
                        _lastOrphan = now;
                    }
                    else
                    {
                        _commits += value;
                        _lastCommit = now;
                    }
                }
            });
            _listener.Start();
        }

        public void Start(Stopwatch clock) => _clock = clock;

        public CounterSnapshot Snapshot()
        {
            lock (_gate)
            {
                return new CounterSnapshot(_orphans, _firstOrphan, _lastOrphan, _commits, _lastCommit);
            }
        }

        public void Dispose() => _listener.Dispose();
    }

    /// <summary>Counts the coordinator's warnings by event id (thousands of retried attempts would flood a console).</summary>
    private sealed class WarningCounter : ILoggerProvider, ILogger
    {
        private readonly System.Collections.Concurrent.ConcurrentDictionary<int, long> _byEvent = new();

        public string Summary() => _byEvent.IsEmpty ? "none" : string.Join(", ", _byEvent.OrderBy(e => e.Key).Select(e => string.Create(CultureInfo.InvariantCulture, $"{e.Value:N0} × {e.Key}")));

        public ILogger CreateLogger(string categoryName) => this;

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
            {
                if (_byEvent.AddOrUpdate(eventId.Id, 1, (_, n) => n + 1) == 1)
                {
                    // The first of each kind, whole, for whoever reads the console.
                    Console.Error.WriteLine($"coordinator warning {eventId.Id}: {formatter(state, exception)} {exception}");
                }
            }
        }

        public void Dispose()
        {
        }
    }

    /// <summary>Times <see cref="ITransactionLog.OpenAsync(NodeId, CancellationToken)"/>; forwards everything.</summary>
    private sealed class TimedLog(ITransactionLog inner) : ITransactionLog
    {
        public TimeSpan OpenTime { get; private set; }

        public Exception? Failure => inner.Failure;

        public ValueTask<LogRecoveryState> OpenAsync(CancellationToken cancellationToken) => TimeAsync(inner.OpenAsync(cancellationToken));

        public ValueTask<LogRecoveryState> OpenAsync(NodeId node, CancellationToken cancellationToken) => TimeAsync(inner.OpenAsync(node, cancellationToken));

        private async ValueTask<LogRecoveryState> TimeAsync(ValueTask<LogRecoveryState> open)
        {
            var started = Stopwatch.GetTimestamp();
            var state = await open;
            OpenTime = Stopwatch.GetElapsedTime(started);
            return state;
        }

        public ValueTask LogCommitDecisionAsync(CommitDecision decision) => inner.LogCommitDecisionAsync(decision);

        public ValueTask LogHeuristicAsync(HeuristicRecord record) => inner.LogHeuristicAsync(record);

        public void LogEnd(GlobalTransactionId transactionId) => inner.LogEnd(transactionId);

        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }

    /// <summary>Times each recovery scan (<see cref="IResourceManager.RecoverAsync"/>) of a resource manager; forwards everything.</summary>
    private sealed class ScanTimed(IResourceManager inner, Stopwatch clock) : IResourceManager
    {
        private readonly Lock _gate = new();
        private readonly List<string> _scans = [];

        public string Name => inner.Name;

        public bool CommitsAtomically => inner.CommitsAtomically;

        /// <summary>The first scan: "start → end" from the clock's start.</summary>
        public string FirstScan
        {
            get
            {
                lock (_gate)
                {
                    return _scans.Count > 0 ? _scans[0] : "none";
                }
            }
        }

        public ValueTask<BranchOutcome> CommitAsync(Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken) => inner.CommitAsync(xid, recoveryData, cancellationToken);

        public ValueTask<BranchOutcome> RollbackAsync(Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken) => inner.RollbackAsync(xid, recoveryData, cancellationToken);

        public async ValueTask<IReadOnlyCollection<InDoubtBranch>> RecoverAsync(CancellationToken cancellationToken)
        {
            var start = clock.Elapsed;
            try
            {
                return await inner.RecoverAsync(cancellationToken);
            }
            finally
            {
                var end = clock.Elapsed;
                lock (_gate)
                {
                    _scans.Add(string.Create(CultureInfo.InvariantCulture, $"{start.TotalMilliseconds:N0} → {end.TotalMilliseconds:N0} ms"));
                }
            }
        }

        public ValueTask ForgetAsync(Xid xid, CancellationToken cancellationToken) => inner.ForgetAsync(xid, cancellationToken);
    }
}
