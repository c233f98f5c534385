namespace TwoPC.Samples.Demo;

/// <summary>The demo's command line.</summary>
/// <param name="Scenarios">The scenarios to run, in order.</param>
/// <param name="LoadCount">Checkouts in the load run.</param>
/// <param name="Concurrency">Checkouts in flight at once in the load run.</param>
/// <param name="Seed">Seed of the load run's random choices.</param>
/// <param name="Keep">Keep everything running after the scenarios, until Ctrl+C.</param>
/// <param name="Verbose">Echo every service's log.</param>
internal sealed record DemoOptions(IReadOnlyList<string> Scenarios, int LoadCount, int Concurrency, int Seed, bool Keep, bool Verbose)
{
    /// <summary>Every scenario, in the order "all" runs them.</summary>
    public static readonly IReadOnlyList<string> AllScenarios = ["success", "funds", "stock", "crash", "duplicate", "load", "embedded", "failover"];
}
