using System.Diagnostics.Metrics;

namespace TwoPC.Diagnostics;

/// <summary>Instruments of the coordinator (meter <see cref="TwoPCTelemetry.MeterName"/>).</summary>
internal sealed class CoordinatorMetrics
{
    public CoordinatorMetrics(Meter meter, Func<int> inDoubt, Func<int> heuristics)
    {
        Begun = meter.CreateCounter<long>("twopc.transactions.begun", "{transaction}", "Global transactions begun.");
        Committed = meter.CreateCounter<long>("twopc.transactions.committed", "{transaction}", "Global transactions committed.");
        RolledBack = meter.CreateCounter<long>("twopc.transactions.rolled_back", "{transaction}", "Global transactions rolled back.");
        Heuristic = meter.CreateCounter<long>("twopc.transactions.heuristic", "{transaction}", "Global transactions that ended with a heuristic outcome.");
        OrphansRolledBack = meter.CreateCounter<long>("twopc.recovery.orphans_rolled_back", "{branch}", "In-doubt branches rolled back by recovery (presumed abort).");
        RecoveredCommits = meter.CreateCounter<long>("twopc.recovery.commits", "{branch}", "In-doubt branches committed by recovery from a logged decision.");
        Takeovers = meter.CreateCounter<long>("twopc.takeovers", "{node}", "Coordinator nodes this node took over on a shared log after their lease expired.");
        BranchesForced = meter.CreateCounter<long>("twopc.branches.forced", "{branch}", "Branches an operator forced to commit or roll back; tags action (commit, rollback) and outcome (committed, rolled_back, mixed, unknown, refused, unknown_resource_manager, failed).");
        PrepareDuration = meter.CreateHistogram("twopc.prepare.duration", "s", "Phase 1: from commit called to the last vote.", tags: null, TwoPCTelemetry.TransactionDurationAdvice);
        DecisionDuration = meter.CreateHistogram("twopc.decision.duration", "s", "Time to force the commit decision to the log.", tags: null, TwoPCTelemetry.LogForceDurationAdvice);
        CommitDuration = meter.CreateHistogram("twopc.phase2.duration", "s", "Phase 2: from the decision to the last acknowledgement.", tags: null, TwoPCTelemetry.TransactionDurationAdvice);
        TransactionDuration = meter.CreateHistogram("twopc.transaction.duration", "s", "From commit called to the outcome.", tags: null, TwoPCTelemetry.TransactionDurationAdvice);
        meter.CreateObservableGauge("twopc.transactions.in_doubt", inDoubt, "{transaction}", "Committed decisions whose phase 2 is not finished, plus in-doubt branches recovery left alone.");
        meter.CreateObservableGauge("twopc.transactions.heuristics", heuristics, "{transaction}", "Heuristic outcomes not yet forgotten by an operator.");
    }

    public Counter<long> Begun { get; }

    public Counter<long> Committed { get; }

    public Counter<long> RolledBack { get; }

    public Counter<long> Heuristic { get; }

    public Counter<long> OrphansRolledBack { get; }

    public Counter<long> RecoveredCommits { get; }

    public Counter<long> BranchesForced { get; }

    public Counter<long> Takeovers { get; }

    public Histogram<double> PrepareDuration { get; }

    public Histogram<double> DecisionDuration { get; }

    public Histogram<double> CommitDuration { get; }

    public Histogram<double> TransactionDuration { get; }
}
