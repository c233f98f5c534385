using System.Diagnostics;

namespace TwoPC.Testing;

/// <summary>Polls a condition until it holds, or throws with a description when the timeout passes.</summary>
public static class Eventually
{
    /// <summary>Waits until <paramref name="condition"/> returns true; transient I/O errors while polling count as "not yet".</summary>
    /// <exception cref="TimeoutException">It did not hold within <paramref name="timeout"/> (the message has the last error and <paramref name="describe"/>).</exception>
    public static async Task TrueAsync(Func<Task<bool>> condition, TimeSpan timeout, Func<string>? describe = null)
    {
        var clock = Stopwatch.StartNew();
        Exception? last = null;
        while (true)
        {
            try
            {
                if (await condition())
                {
                    return;
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or IOException or TaskCanceledException or System.Data.Common.DbException)
            {
                last = ex;
            }

            if (clock.Elapsed > timeout)
            {
                throw new TimeoutException($"Condition not met within {timeout.TotalSeconds:0.#} s{(last is null ? string.Empty : " (last error: " + last.Message + ")")}.\n{describe?.Invoke()}");
            }

            await Task.Delay(20);
        }
    }

    /// <summary>Waits until <paramref name="condition"/> returns true (see the asynchronous overload).</summary>
    public static Task TrueAsync(Func<bool> condition, TimeSpan timeout, Func<string>? describe = null) =>
        TrueAsync(() => Task.FromResult(condition()), timeout, describe);
}
