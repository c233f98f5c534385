using System.Collections.Concurrent;
using System.Diagnostics;

namespace TwoPC.Samples.Demo;

/// <summary>
/// Scenario 6: many concurrent checkouts with random customers, skus and quantities -- some customers run out of
/// money and some skus out of stock -- then the consistency report.
/// </summary>
internal sealed class LoadRun(DemoEnvironment env, Narrator say, Invariants invariants, DemoOptions options, string? heading = null)
{
    /// <summary>Runs the checkouts and the consistency report; returns every checkout's answer.</summary>
    public async Task<IReadOnlyList<CheckoutAnswer>> RunAsync(CancellationToken cancellationToken)
    {
        say.Heading(heading ?? $"6. Load: {options.LoadCount} checkouts, {options.Concurrency} at a time");
        say.Story("Random customers, skus and quantities (seed " + options.Seed + "): the poorer customers run out of money (a");
        say.Story("No vote at the payment branch's PREPARE) and the lamps and chairs run out (the orders branch fails);");
        say.Story("hot rows wait on each other's prepared transactions. Whatever each checkout's fate, the totals must hold.");
        var before = await ShopState.ReadAsync(env, cancellationToken);
        var customers = before.Wallets.Keys.ToArray();
        var skus = before.Stock.Keys.ToArray();
#pragma warning disable CA5394 // Random is fine for picking demo orders
        var random = new Random(options.Seed);
        var plan = Enumerable.Range(0, options.LoadCount)
            .Select(_ => (Customer: customers[random.Next(customers.Length)], Sku: skus[random.Next(skus.Length)], Quantity: random.Next(1, 4)))
            .ToList();
#pragma warning restore CA5394

        var shop = new Shop(env);
        var results = new ConcurrentBag<(CheckoutAnswer Answer, TimeSpan Latency)>();
        var clock = Stopwatch.StartNew();
        await Parallel.ForEachAsync(plan, new ParallelOptions { MaxDegreeOfParallelism = options.Concurrency, CancellationToken = cancellationToken }, async (item, token) =>
        {
            var started = Stopwatch.GetTimestamp();
            CheckoutAnswer answer;
            try
            {
                answer = await shop.CheckoutAsync(item.Customer, item.Sku, item.Quantity, token);
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException && !token.IsCancellationRequested)
            {
                answer = new CheckoutAnswer(string.Empty, null, "Error", ex.Message, null);
            }

            results.Add((answer, Stopwatch.GetElapsedTime(started)));
        });
        var elapsed = clock.Elapsed;

        var answers = results.Select(r => r.Answer).ToList();
        var latencies = results.Select(r => r.Latency.TotalMilliseconds).Order().ToArray();
        var committed = answers.Where(a => a.Outcome == "Committed").ToList();
        var rolledBack = answers.Where(a => a.Outcome == "RolledBack").ToList();
        var funds = rolledBack.Count(a => a.Reason?.Contains("insufficient funds", StringComparison.Ordinal) == true);
        var stock = rolledBack.Count(a => a.Reason?.Contains("out of stock", StringComparison.Ordinal) == true);
        var otherRollbacks = rolledBack.Where(a => a.Reason?.Contains("insufficient funds", StringComparison.Ordinal) != true && a.Reason?.Contains("out of stock", StringComparison.Ordinal) != true).ToList();
        var unknown = answers.Where(a => a.Outcome is not ("Committed" or "RolledBack")).ToList();

        say.Story($"{answers.Count} checkouts in {elapsed.TotalSeconds:0.0} s = {answers.Count / elapsed.TotalSeconds:0.0} checkouts/s; " +
            $"latency p50 {Percentile(latencies, 0.50):0} ms, p95 {Percentile(latencies, 0.95):0} ms, max {latencies.LastOrDefault():0} ms");
        say.Story($"  committed                  {committed.Count,5}");
        say.Story($"  rolled back: no funds      {funds,5}   (payment branch voted No at PREPARE)");
        say.Story($"  rolled back: out of stock  {stock,5}   (orders branch)");
        say.Story($"  rolled back: other         {otherRollbacks.Count,5}{Examples(otherRollbacks)}");
        say.Story($"  unknown / failed           {unknown.Count,5}{Examples(unknown)}");

        say.Story("Waiting for the shipping consumer to drain the queue ...");
        var after = await Invariants.SettleAsync(env, TimeSpan.FromSeconds(60), cancellationToken);
        after.Print(say, before);
        say.Story("Consistency report:");
        var orders = after.Orders.Select(o => o.OrderId).ToHashSet(StringComparer.Ordinal);
        var newOrders = after.Orders.Count - before.Orders.Count;
        say.Expect(unknown.Count == 0, "every checkout got a definite answer: Committed or RolledBack", unknown.Count == 0 ? null : $"{unknown.Count} did not");
        say.Expect(committed.All(a => orders.Contains(a.OrderId)) && rolledBack.All(a => !orders.Contains(a.OrderId)) && newOrders == committed.Count,
            $"every answer matches the databases: {committed.Count} committed answers = {newOrders} new orders; no rolled-back order exists");
        await invariants.CheckAsync(env, say, cancellationToken);
        say.Story($"Throughput: {answers.Count / elapsed.TotalSeconds:0.0} checkouts/s ({committed.Count / elapsed.TotalSeconds:0.0} committed/s), " +
            $"each with 2 PostgreSQL branches and 1 confirmed publish, on {Environment.ProcessorCount} cores.");
        return answers;
    }

    private static double Percentile(double[] sorted, double p) => sorted.Length == 0 ? 0 : sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p * sorted.Length) - 1)];

    private static string Examples(List<CheckoutAnswer> answers) =>
        answers.Count == 0 ? string.Empty : "   e.g. " + string.Join("; ", answers.Select(a => a.Reason ?? a.Outcome).Distinct(StringComparer.Ordinal).Take(3));
}
