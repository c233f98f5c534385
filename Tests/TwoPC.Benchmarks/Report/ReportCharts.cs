using System.Globalization;
using ScottPlot;

namespace TwoPC.Benchmarks.Report;

/// <summary>Draws the report's charts as SVG with ScottPlot: throughput vs. concurrency, and latency percentiles at one concurrency.</summary>
public static class ReportCharts
{
    private const int Width = 800;
    private const int Height = 450;

    /// <summary>
    /// One line per series: throughput against concurrency (x on a log₂ scale, ticks at the measured
    /// concurrencies; y on a log₁₀ scale when <paramref name="logY"/>, for series an order of magnitude
    /// apart). Writes <paramref name="path"/>.
    /// </summary>
    public static void Throughput(string path, string title, string yLabel, IReadOnlyList<BenchmarkPoint> points, bool logY = false)
    {
        ArgumentNullException.ThrowIfNull(points);
        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        var series = points.Select(p => p.Series).Distinct().ToArray();
        for (var i = 0; i < series.Length; i++)
        {
            var cells = points.Where(p => p.Series == series[i]).OrderBy(p => p.Concurrency).ToArray();
            var line = plot.Add.Scatter(cells.Select(c => Math.Log2(c.Concurrency)).ToArray(), cells.Select(c => logY ? Math.Log10(c.PerSecond) : c.PerSecond).ToArray());
            line.LegendText = series[i];
            line.Color = palette.GetColor(i);
            line.LineWidth = 2;
            line.MarkerSize = 7;
        }

        var concurrencies = points.Select(p => p.Concurrency).Distinct().Order().ToArray();
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            concurrencies.Select(c => Math.Log2(c)).ToArray(), concurrencies.Select(c => c.ToString(CultureInfo.InvariantCulture)).ToArray());
        if (logY)
        {
            // The ScottPlot way to a log axis: plot log10 of the data, label ticks with 10^y, minor ticks spaced logarithmically.
            plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic
            {
                LabelFormatter = y => Thousands(Math.Pow(10, y)),
                MinorTickGenerator = new ScottPlot.TickGenerators.LogMinorTickGenerator(),
                IntegerTicksOnly = true,
            };
            yLabel += " (log scale)";
        }
        else
        {
            // From zero, so the gap between two lines reads as a ratio.
            plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic { LabelFormatter = Thousands };
            plot.Axes.SetLimitsY(0, points.Max(p => p.PerSecond) * 1.08);
        }

        plot.Title(title);
        plot.XLabel("concurrent callers (log scale)");
        plot.YLabel(yLabel);
        plot.ShowLegend(Alignment.UpperLeft);
        Save(plot, path);
    }

    /// <summary>
    /// Grouped bars, p50 and p99 latency in milliseconds for each series at <paramref name="concurrency"/>;
    /// <paramref name="note"/> is added to the x-axis label. Writes <paramref name="path"/>.
    /// </summary>
    public static void Latency(string path, string title, int concurrency, IReadOnlyList<BenchmarkPoint> points, string? note = null)
    {
        ArgumentNullException.ThrowIfNull(points);
        var cells = points.Where(p => p.Concurrency == concurrency).ToArray();
        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        var (p50Color, p99Color) = (palette.GetColor(0), palette.GetColor(1));
        var bars = new List<Bar>();
        for (var i = 0; i < cells.Length; i++)
        {
            bars.Add(new Bar { Position = (i * 3) + 0, Value = cells[i].P50Ms, FillColor = p50Color, Label = Millis(cells[i].P50Ms) });
            bars.Add(new Bar { Position = (i * 3) + 1, Value = cells[i].P99Ms, FillColor = p99Color, Label = Millis(cells[i].P99Ms) });
        }

        var barPlot = plot.Add.Bars(bars);
        barPlot.ValueLabelStyle.FontSize = 11;
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            cells.Select((_, i) => (i * 3) + 0.5).ToArray(), cells.Select(c => Wrap(c.Series)).ToArray());
        plot.Axes.Bottom.MajorTickStyle.Length = 0;
        plot.Axes.Margins(bottom: 0, top: 0.15);
        plot.Legend.ManualItems.Add(new LegendItem { LabelText = "p50", FillColor = p50Color });
        plot.Legend.ManualItems.Add(new LegendItem { LabelText = "p99", FillColor = p99Color });
        plot.ShowLegend(Alignment.UpperLeft);
        plot.Title(title);
        plot.XLabel(string.Create(CultureInfo.InvariantCulture, $"variant, {concurrency} concurrent{(note is null ? string.Empty : "; " + note)}"));
        plot.YLabel("latency (ms)");
        Save(plot, path);
    }

    private static void Save(Plot plot, string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        plot.SaveSvg(path, Width, Height);
        Console.WriteLine($"Wrote {path}");
    }

    private static string Thousands(double value) => value.ToString("N0", CultureInfo.InvariantCulture);

    private static string Millis(double value) => value.ToString(value < 1 ? "0.###" : value < 10 ? "0.##" : "0.#", CultureInfo.InvariantCulture);

    /// <summary>Breaks a long variant name over two lines so neighbouring tick labels do not overlap.</summary>
    private static string Wrap(string name)
    {
        if (name.Length <= 14)
        {
            return name;
        }

        var middle = name.Length / 2;
        var space = name.LastIndexOf(' ', middle) is var before and > 0 ? before : name.IndexOf(' ', middle);
        return space > 0 ? name[..space] + "\n" + name[(space + 1)..] : name;
    }
}
