using System.Diagnostics.Metrics;
using System.Globalization;

namespace TwoPC.Verify;

/// <summary>
/// Which commit path a worker's transactions took, from the coordinator's own metrics (meter <c>TwoPC</c>): committed
/// transactions, commit decisions forced to the log (<c>twopc.decision.duration</c> recordings), last-resource commits
/// whose decision was the marker's COMMIT (<c>twopc.last_resource.commits</c>, outcome committed or fenced_committed),
/// fences and markers re-driven by recovery. Reported every second on stdout as
/// <c>metrics committed C log-decisions D marker-commits M fences F markers-redriven R</c> (totals of this process), so
/// the checker knows, even of a worker it SIGKILLed, whether the last-resource path was taken.
/// </summary>
internal sealed class LastResourceCounters : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly Action<string> _report;
    private readonly Timer _timer;
    private long _committed;
    private long _logDecisions;
    private long _markerCommits;
    private long _fences;
    private long _redriven;

    public LastResourceCounters(Action<string> report)
    {
        _report = report;
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == "TwoPC" && instrument.Name is "twopc.transactions.committed" or "twopc.decision.duration"
                or "twopc.last_resource.commits" or "twopc.last_resource.fences" or "twopc.last_resource.markers_redriven")
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            switch (instrument.Name)
            {
                case "twopc.transactions.committed":
                    Interlocked.Add(ref _committed, value);
                    break;
                case "twopc.last_resource.commits" when Tag(tags, "outcome") is "committed" or "fenced_committed":
                    Interlocked.Add(ref _markerCommits, value);
                    break;
                case "twopc.last_resource.fences" when Tag(tags, "result") is not "failed":
                    Interlocked.Add(ref _fences, value);
                    break;
                case "twopc.last_resource.markers_redriven":
                    Interlocked.Add(ref _redriven, value);
                    break;
            }
        });
        _listener.SetMeasurementEventCallback<double>((instrument, _, _, _) =>
        {
            if (instrument.Name == "twopc.decision.duration")
            {
                Interlocked.Increment(ref _logDecisions);
            }
        });
        _listener.Start();
        _timer = new Timer(_ => ReportNow(), null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
    }

    public void ReportNow() => _report(string.Create(CultureInfo.InvariantCulture,
        $"metrics committed {Interlocked.Read(ref _committed)} log-decisions {Interlocked.Read(ref _logDecisions)} marker-commits {Interlocked.Read(ref _markerCommits)} fences {Interlocked.Read(ref _fences)} markers-redriven {Interlocked.Read(ref _redriven)}"));

    public void Dispose()
    {
        _timer.Dispose();
        _listener.Dispose();
    }

    private static string? Tag(ReadOnlySpan<KeyValuePair<string, object?>> tags, string name)
    {
        foreach (var tag in tags)
        {
            if (tag.Key == name)
            {
                return tag.Value as string;
            }
        }

        return null;
    }
}
