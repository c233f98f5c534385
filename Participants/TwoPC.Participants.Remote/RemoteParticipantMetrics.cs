using System.Diagnostics.Metrics;
using TwoPC.Diagnostics;

namespace TwoPC.Participants.Remote;

/// <summary>Instruments of a remote participant (meter <c>TwoPC</c>).</summary>
internal sealed class RemoteParticipantMetrics : IDisposable
{
    private readonly Meter _meter;
    private readonly Counter<long> _votes;
    private readonly Counter<long> _callbacks;
    private readonly Counter<long> _recovered;
    private readonly Counter<long> _reports;
    private readonly string _name;

    public RemoteParticipantMetrics(string name, IMeterFactory? meterFactory)
    {
        _name = name;
        _meter = meterFactory?.Create(new MeterOptions(TwoPCTelemetry.MeterName)) ?? new Meter(TwoPCTelemetry.MeterName);
        _votes = _meter.CreateCounter<long>("twopc.remote.votes", "{branch}", "Remote branches that ended their work, by vote.");
        _callbacks = _meter.CreateCounter<long>("twopc.remote.callbacks", "{call}", "Coordinator callbacks served, by action and answer.");
        _reports = _meter.CreateCounter<long>("twopc.remote.prepared_reports", "{branch}", "Yes votes made known to the coordinator before phase 1, by result: signed (into the answer, for the caller to relay), taken, refused, failed or unsupported (reported directly).");
        _recovered = _meter.CreateCounter<long>("twopc.remote.recovered", "{branch}", "Prepared branches resolved by participant-side recovery, by action.");
    }

    public void Voted(Participants.VoteKind vote) =>
        _votes.Add(1, new KeyValuePair<string, object?>("twopc.resource_manager", _name), new KeyValuePair<string, object?>("twopc.vote", vote.ToString()));

    public void Callback(string action, string answer) =>
        _callbacks.Add(1, new KeyValuePair<string, object?>("twopc.resource_manager", _name), new KeyValuePair<string, object?>("twopc.action", action), new KeyValuePair<string, object?>("twopc.answer", answer));

    public void Recovered(string action) =>
        _recovered.Add(1, new KeyValuePair<string, object?>("twopc.resource_manager", _name), new KeyValuePair<string, object?>("twopc.action", action));

    public void PreparedReported(string result) =>
        _reports.Add(1, new KeyValuePair<string, object?>("twopc.resource_manager", _name), new KeyValuePair<string, object?>("twopc.result", result));

    public void Dispose() => _meter.Dispose();
}
