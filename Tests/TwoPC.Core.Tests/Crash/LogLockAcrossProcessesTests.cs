using TwoPC.Testing;
using TwoPC.Wal;

namespace TwoPC.Tests.Crash;

/// <summary>The log directory lock holds across processes, and a SIGKILL releases it.</summary>
[Collection(CrashTestCollection.Name)]
public sealed class LogLockAcrossProcessesTests
{
    [Fact]
    public async Task A_second_coordinator_process_on_the_same_log_fails_naming_the_directory_until_the_first_dies()
    {
        var root = Directory.CreateTempSubdirectory("twopc-lock-");
        try
        {
            var log = Path.Combine(root.FullName, "log");
            var data = Path.Combine(root.FullName, "data");
            Directory.CreateDirectory(data);
            using var holder = CrashHostProcess.Start(["run", "--log", log, "--data", data, "--participants", "2", "--transactions", "5", "--concurrency", "1", "--seed", "1", "--no-votes", "0", "--crash-step", "BeforePrepare", "--crash-at", "1"]);
            Assert.NotNull(await holder.WaitForLineAsync(TimeSpan.FromSeconds(45), "CRASHPOINT"));

            // The first process is alive (frozen) and holds the log: a second coordinator must not open it.
            await using (var second = new FileTransactionLog(new FileTransactionLogOptions { Directory = log }))
            {
                var error = await Assert.ThrowsAsync<TransactionLogLockedException>(async () => await second.OpenAsync(default));
                Assert.Contains(Path.GetFullPath(log), error.Message, StringComparison.Ordinal);
            }

            holder.Kill();
            await holder.WaitForExitAsync(TimeSpan.FromSeconds(30));
            await using var third = new FileTransactionLog(new FileTransactionLogOptions { Directory = log });
            var state = await third.OpenAsync(default);
            Assert.Equal(2UL, state.Epoch);
        }
        finally
        {
            root.Delete(recursive: true);
        }
    }

    /// <summary>
    /// Issue 10, item 18: <c>DOTNET_SYSTEM_IO_DISABLEFILELOCKING=1</c> turns .NET's FileShare locks into no-ops;
    /// a second coordinator process started with it must still be refused the log.
    /// </summary>
    [Fact]
    public async Task Item18_a_second_process_with_file_locking_disabled_by_the_environment_is_still_refused()
    {
        var root = Directory.CreateTempSubdirectory("twopc-lock-");
        try
        {
            var log = Path.Combine(root.FullName, "log");
            var data = Path.Combine(root.FullName, "data");
            var otherData = Path.Combine(root.FullName, "data2");
            Directory.CreateDirectory(data);
            Directory.CreateDirectory(otherData);
            // Both processes run with .NET's file locking switched off.
            var noFileLocking = new Dictionary<string, string> { ["DOTNET_SYSTEM_IO_DISABLEFILELOCKING"] = "1" };
            using var holder = CrashHostProcess.StartProgram(
                Path.Combine("Tests", "TwoPC.CrashHost"),
                ["run", "--log", log, "--data", data, "--participants", "2", "--transactions", "5", "--concurrency", "1", "--seed", "1", "--no-votes", "0", "--crash-step", "BeforePrepare", "--crash-at", "1"],
                noFileLocking);
            Assert.NotNull(await holder.WaitForLineAsync(TimeSpan.FromSeconds(45), "CRASHPOINT"));

            using var second = CrashHostProcess.StartProgram(
                Path.Combine("Tests", "TwoPC.CrashHost"),
                ["run", "--log", log, "--data", otherData, "--participants", "1", "--transactions", "1", "--concurrency", "1", "--seed", "2", "--no-votes", "0"],
                noFileLocking);
            var exitCode = await second.WaitForExitAsync(TimeSpan.FromSeconds(45));

            Assert.True(exitCode != 0, "the second coordinator ran on a log another process holds:\n" + second.Describe());
            Assert.DoesNotContain(second.StdoutLines, l => l.StartsWith("STARTED", StringComparison.Ordinal));
            Assert.Contains("is locked", second.Describe(), StringComparison.Ordinal);

            holder.Kill();
            await holder.WaitForExitAsync(TimeSpan.FromSeconds(30));
            await using var third = new FileTransactionLog(new FileTransactionLogOptions { Directory = log });
            Assert.Equal(2UL, (await third.OpenAsync(default)).Epoch);
        }
        finally
        {
            root.Delete(recursive: true);
        }
    }
}
