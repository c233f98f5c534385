using TwoPC.Protocol;
using TwoPC.Transactions;

namespace TwoPC.CrashHost;

/// <summary>
/// The coordinator's <see cref="TransactionCoordinatorOptions.StepHook"/>: at the chosen occurrence of
/// the chosen step it reports <c>CRASHPOINT &lt;step&gt; &lt;gtrid&gt;</c> and freezes, so the test can
/// SIGKILL the process exactly there.
/// </summary>
/// <remarks>
/// It blocks the calling thread synchronously rather than awaiting: the hook is called in the middle
/// of the protocol's own call path (the prepare loop, the phase-2 loop), and a synchronous block keeps
/// everything after the step on that path from running — with an await, the loop would go on to
/// prepare or commit the next branch before the kill. Once the crash point is reached, every later
/// hook call (of any step, any transaction) freezes too, so the rest of the process stops at its next
/// protocol step instead of racing the kill.
/// </remarks>
internal sealed class CrashPoint(ProtocolStep step, int occurrence, int index)
{
    private int _count;
    private volatile bool _crashed;

    public ValueTask OnStepAsync(ProtocolStep current, GlobalTransactionId id, int k)
    {
        if (_crashed)
        {
            Freeze();
        }

        if (current != step || (index > 0 && k != index))
        {
            return ValueTask.CompletedTask;
        }

        if (Interlocked.Increment(ref _count) != occurrence)
        {
            return ValueTask.CompletedTask;
        }

        _crashed = true;
        Output.Line($"CRASHPOINT {current} {id}");
        Freeze();
        return ValueTask.CompletedTask;
    }

    /// <summary>The step (and branch index, when one was given) this point stops at.</summary>
    public bool Matches(ProtocolStep current, int k) => current == step && (index <= 0 || k == index);

    private static void Freeze() => Thread.Sleep(Timeout.Infinite);
}

/// <summary>Protocol lines on stdout, one whole line at a time, flushed immediately.</summary>
internal static class Output
{
    private static readonly Lock Gate = new();

    public static void Line(string line)
    {
        lock (Gate)
        {
            Console.Out.Write(line + "\n");
            Console.Out.Flush();
        }
    }
}
