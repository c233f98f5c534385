namespace TwoPC.Samples.Payments;

/// <summary>
/// Demo chaos control, mapped only when <c>Demo:Chaos=true</c>: <c>POST /demo/hold-next-commit</c> makes the next
/// coordinator commit callback (<c>/twopc/commit</c>) print <c>commit-held</c> and wait, without committing, until
/// its caller goes away — a coordinator SIGKILLed after its decision, in the middle of phase 2.
/// </summary>
internal sealed class CommitHold
{
    private int _armed;

    public static void Map(WebApplication app, ILogger log)
    {
        var hold = new CommitHold();
        app.Use(async (context, next) =>
        {
            if (context.Request.Path.StartsWithSegments("/twopc/commit", StringComparison.Ordinal) && Interlocked.Exchange(ref hold._armed, 0) == 1)
            {
                log.CommitHeld();
                Console.WriteLine("commit-held");
                try
                {
                    await Task.Delay(Timeout.Infinite, context.RequestAborted);
                }
                catch (OperationCanceledException)
                {
                    // The coordinator is gone; its restart (or our own recovery) commits the branch later.
                }

                return;
            }

            await next(context);
        });
        app.MapPost("/demo/hold-next-commit", () =>
        {
            Interlocked.Exchange(ref hold._armed, 1);
            log.HoldArmed();
            return Results.NoContent();
        });
    }
}
