using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;

namespace TwoPC.Benchmarks;

/// <summary>
/// Where a remote transaction's time goes, at one concurrency: the client's steps (begin, the two branch calls, commit)
/// timed around each call, and every HTTP request the coordinator and the two services served (ASP.NET Core's
/// <c>http.server.request.duration</c>, all three run in this process) counted per transaction with its mean time.
/// </summary>
public static partial class RemoteBenchmark
{
    private sealed class Profile : IDisposable
    {
        private readonly MeterListener _listener = new();
        private readonly ConcurrentDictionary<string, Stat> _requests = new(StringComparer.Ordinal);
        private readonly ConcurrentDictionary<string, Stat> _steps = new(StringComparer.Ordinal);
        private volatile bool _on;

        public Profile()
        {
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == "Microsoft.AspNetCore.Hosting" && instrument.Name == "http.server.request.duration")
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            _listener.SetMeasurementEventCallback<double>((_, seconds, tags, _) =>
            {
                if (!_on)
                {
                    return;
                }

                string? method = null, route = null;
                foreach (var tag in tags)
                {
                    if (tag.Key == "http.request.method")
                    {
                        method = tag.Value as string;
                    }
                    else if (tag.Key == "http.route")
                    {
                        route = tag.Value as string;
                    }
                }

                _requests.GetOrAdd($"{method} {route}", _ => new Stat()).Add(seconds);
            });
            _listener.Start();
        }

        public void Step(string name, long startedTimestamp)
        {
            if (_on)
            {
                _steps.GetOrAdd(name, _ => new Stat()).Add(Stopwatch.GetElapsedTime(startedTimestamp).TotalSeconds);
            }
        }

        public async Task<string> RunAsync(int concurrency, TimeSpan duration, Func<Task> operation)
        {
            await Load.RunAsync(concurrency, TimeSpan.FromSeconds(1), operation);
            var cpu = Process.GetCurrentProcess().TotalProcessorTime;
            _on = true;
            var measured = await Load.RunAsync(concurrency, duration, operation);
            _on = false;
            cpu = Process.GetCurrentProcess().TotalProcessorTime - cpu;
            var transactions = Math.Max(1, _steps.TryGetValue("transaction", out var all) ? all.Count : 1);
            RequestsPerTransaction = (double)_requests.Values.Sum(s => s.Count) / transactions;
            var text = new StringBuilder();
            text.Append(CultureInfo.InvariantCulture, $"Profile at {concurrency} concurrent ({duration.TotalSeconds:0} s, {measured.PerSecond:N0} tx/s, {transactions:N0} transactions): this process (client, coordinator, both services; not PostgreSQL) used **{cpu.TotalMilliseconds * 1000 / transactions:N0} µs of CPU per transaction**.\n\n");
            text.Append("| client step | mean ms |\n|---|---:|\n");
            foreach (var (name, stat) in _steps.OrderBy(s => s.Key == "transaction" ? 1 : 0).ThenBy(s => s.Key, StringComparer.Ordinal))
            {
                text.Append(CultureInfo.InvariantCulture, $"| {name} | {stat.MeanMilliseconds:F2} |\n");
            }

            var requests = _requests.Values.Sum(s => s.Count);
            text.Append(CultureInfo.InvariantCulture, $"\n| HTTP request served (all three servers) | per transaction | mean ms (server side) |\n|---|---:|---:|\n");
            foreach (var (name, stat) in _requests.OrderByDescending(s => s.Value.Count).ThenBy(s => s.Key, StringComparer.Ordinal))
            {
                text.Append(CultureInfo.InvariantCulture, $"| `{name}` | {(double)stat.Count / transactions:0.00} | {stat.MeanMilliseconds:F2} |\n");
            }

            text.Append(CultureInfo.InvariantCulture, $"| **all** | **{(double)requests / transactions:0.00}** | |\n");
            return text.ToString();
        }

        /// <summary>HTTP requests served per transaction in the last profile run.</summary>
        public double RequestsPerTransaction { get; private set; }

        public void Dispose() => _listener.Dispose();

        private sealed class Stat
        {
            private long _count;
            private long _ticks;

            public long Count => Interlocked.Read(ref _count);

            public double MeanMilliseconds => Count == 0 ? 0 : Interlocked.Read(ref _ticks) / (double)Count / TimeSpan.TicksPerMillisecond;

            public void Add(double seconds)
            {
                Interlocked.Increment(ref _count);
                Interlocked.Add(ref _ticks, (long)(seconds * TimeSpan.TicksPerSecond));
            }
        }
    }
}
