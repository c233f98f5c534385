using System.Collections.Concurrent;
using System.Runtime.InteropServices;

namespace TwoPC.TestServers.Internal;

/// <summary>Something to stop synchronously when the test process exits without disposing it.</summary>
internal interface IProcessExitCleanup
{
    void CleanUpAtProcessExit();
}

/// <summary>
/// Best effort: stops servers still running when the process exits normally (AppDomain.ProcessExit)
/// or is terminated by SIGTERM, SIGINT or SIGHUP. (.NET does not raise ProcessExit when such a
/// signal terminates the process, hence the signal handlers; they do nothing when another handler,
/// e.g. the Generic Host's, cancelled the signal to shut down gracefully — ProcessExit follows
/// then.) A SIGKILLed process leaves its servers behind; the next StartAsync finds their
/// directories (<see cref="PrivateDirectory.FindOrphans"/>) and stops them.
/// </summary>
internal static class ProcessExitCleanup
{
    private static readonly ConcurrentDictionary<IProcessExitCleanup, byte> Live = new();
    private static readonly List<PosixSignalRegistration> SignalRegistrations = [];
    private static int _hooked;

    public static void Register(IProcessExitCleanup server)
    {
        if (Interlocked.Exchange(ref _hooked, 1) == 0)
        {
            AppDomain.CurrentDomain.ProcessExit += (_, _) => CleanUpAll();
            foreach (var signal in new[] { PosixSignal.SIGTERM, PosixSignal.SIGINT, PosixSignal.SIGHUP })
            {
                try
                {
                    SignalRegistrations.Add(PosixSignalRegistration.Create(signal, OnTerminatingSignal));
                }
                catch (PlatformNotSupportedException)
                {
                }
            }
        }

        Live.TryAdd(server, 0);
    }

    public static void Unregister(IProcessExitCleanup server) => Live.TryRemove(server, out _);

    private static void OnTerminatingSignal(PosixSignalContext context)
    {
        // Handlers run most recently registered first: a host registered after the first server
        // has already had its say. If it keeps the process alive, ProcessExit cleans up later.
        if (!context.Cancel)
        {
            CleanUpAll();
        }
    }

    private static void CleanUpAll()
    {
        foreach (var server in Live.Keys)
        {
            try
            {
                server.CleanUpAtProcessExit();
            }
            catch (Exception)
            {
                // Nothing useful to do while the process exits.
            }
        }

        Live.Clear();
    }
}
