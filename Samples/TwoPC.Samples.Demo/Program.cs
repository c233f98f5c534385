using System.CommandLine;
using System.Diagnostics;

namespace TwoPC.Samples.Demo;

/// <summary>
/// <c>dotnet run --project Samples/TwoPC.Samples.Demo -c Release [-- --scenario crash --load-count 100 --keep]</c>.
/// Exit code 0: every expectation and invariant held; 1: one failed (listed at the end); 2: the demo could not start
/// its servers or services; 130: interrupted.
/// </summary>
internal static class Program
{
    private static async Task<int> Main(string[] args)
    {
        var scenario = new Option<string[]>("--scenario", "-s")
        {
            Description = "Scenarios to run, in order (repeatable): " + string.Join(", ", DemoOptions.AllScenarios) + ", or all (the default).",
            AllowMultipleArgumentsPerToken = true,
            DefaultValueFactory = _ => ["all"],
        };
        scenario.AcceptOnlyFromAmong(["all", .. DemoOptions.AllScenarios]);
        var loadCount = new Option<int>("--load-count") { Description = "Checkouts in the load run.", DefaultValueFactory = _ => 300 };
        loadCount.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() is < 1 or > 100_000)
            {
                r.AddError("--load-count must be 1-100000.");
            }
        });
        var concurrency = new Option<int>("--concurrency") { Description = "Checkouts in flight at once in the load run.", DefaultValueFactory = _ => 16 };
        concurrency.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() is < 1 or > 64)
            {
                r.AddError("--concurrency must be 1-64.");
            }
        });
        var seed = new Option<int>("--seed") { Description = "Seed of the load run's random checkouts.", DefaultValueFactory = _ => 42 };
        var keep = new Option<bool>("--keep") { Description = "Keep the servers and services running after the scenarios (until Ctrl+C), to explore them." };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Echo every service's log." };

        var root = new RootCommand("The TwoPC order/payment demo: starts a private PostgreSQL and RabbitMQ, the coordinator and the sample services, and runs the scenarios.")
        {
            scenario, loadCount, concurrency, seed, keep, verbose,
        };
        root.SetAction((parse, cancellationToken) =>
        {
            var chosen = parse.GetValue(scenario) ?? ["all"];
            var scenarios = chosen.Contains("all") ? DemoOptions.AllScenarios : DemoOptions.AllScenarios.Where(chosen.Contains).ToList();
            return RunAsync(new DemoOptions(scenarios, parse.GetValue(loadCount), parse.GetValue(concurrency), parse.GetValue(seed), parse.GetValue(keep), parse.GetValue(verbose)), cancellationToken);
        });

        // Ctrl+C / SIGTERM cancel the token; the demo then stops its services and servers (give it the time to).
        return await root.Parse(args).InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = TimeSpan.FromSeconds(60) });
    }

    private static async Task<int> RunAsync(DemoOptions options, CancellationToken cancellationToken)
    {
        var say = new Narrator();
        var clock = Stopwatch.StartNew();
        say.Line("TwoPC order/payment demo -- scenarios: " + string.Join(", ", options.Scenarios));
        DemoEnvironment env;
        try
        {
            env = await DemoEnvironment.StartAsync(options, say, cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            say.Line("Interrupted; stopped everything.");
            return 130;
        }
        catch (Exception ex)
        {
            say.Line($"The demo could not start: {ex.GetType().Name}: {ex.Message}");
            return 2;
        }

        await using (env)
        {
            var timings = new List<(string Scenario, TimeSpan Elapsed, int Failures)>();
            try
            {
                var initial = await ShopState.ReadAsync(env, cancellationToken);
                var invariants = Invariants.Baseline(initial);
                say.Line($"Initial state: {initial.Wallets.Count} wallets holding {Narrator.Money(invariants.InitialMoney)}, {invariants.InitialUnits} units of {initial.Stock.Count} skus in stock.");
                var scenarios = new Scenarios(env, say, invariants, options);
                foreach (var name in options.Scenarios)
                {
                    var started = Stopwatch.StartNew();
                    var failuresBefore = say.Failures.Count;
                    try
                    {
                        await scenarios.RunAsync(name, cancellationToken);
                    }
                    catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
                    {
                        say.Fail($"scenario {name} failed: {ex.GetType().Name}: {ex.Message}");
                    }

                    timings.Add((name, started.Elapsed, say.Failures.Count - failuresBefore));
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                say.Line();
                say.Line("Interrupted; stopping the services and servers.");
                return 130;
            }

            say.Heading("Summary");
            foreach (var (name, elapsed, failures) in timings)
            {
                say.Story($"{name,-10} {(failures == 0 ? "ok" : $"{failures} FAILED"),-10} {elapsed.TotalSeconds,5:0.0} s");
            }

            if (say.Failures.Count > 0)
            {
                say.Line();
                say.Line($"{say.Failures.Count} expectation(s) failed:");
                foreach (var failure in say.Failures)
                {
                    say.Line("  - " + failure);
                }

                env.PrintServiceTails(say);
            }
            else
            {
                say.Line();
                say.Line($"All expectations and invariants held ({clock.Elapsed.TotalSeconds:0.0} s in total).");
            }

            if (options.Keep)
            {
                await KeepRunningAsync(env, say, cancellationToken);
            }

            return say.Failures.Count == 0 ? 0 : 1;
        }
    }

    private static async Task KeepRunningAsync(DemoEnvironment env, Narrator say, CancellationToken cancellationToken)
    {
        say.Heading("Still running (--keep) -- Ctrl+C stops everything");
        foreach (var service in env.Services)
        {
            say.Story($"{service.Name,-12} {service.Url}");
        }

        say.Story($"PostgreSQL   {env.Postgres.ConnectionString("orders")} (also payments, shipping)");
        say.Story($"RabbitMQ     {env.RabbitMq.AmqpUri}");
        say.Story($"try: curl -s -X POST {env.Orders.Url}checkout -H 'Content-Type: application/json' -d '{{\"customerId\":\"alice\",\"sku\":\"mug\",\"quantity\":1,\"amount\":8.00}}'");
        say.Story($"     curl -s {env.Payments.Url}wallets    curl -s {env.Orders.Url}stock");
        try
        {
            await Task.Delay(Timeout.Infinite, cancellationToken);
        }
        catch (OperationCanceledException)
        {
            say.Line("Stopping ...");
        }
    }
}
