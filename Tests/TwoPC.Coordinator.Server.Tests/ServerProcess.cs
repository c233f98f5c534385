using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using TwoPC.Testing;

namespace TwoPC.Coordinator.Server.Tests;

/// <summary>
/// The coordinator server as a separate OS process on a free loopback port (for the limits a hostile client could take a
/// process down with: connections, memory, disk), with its own log directory and extra command-line settings.
/// </summary>
public sealed class ServerProcess : IAsyncDisposable
{
    private readonly DirectoryInfo? _ownLog;
    private CrashHostProcess? _process;

    private ServerProcess(string logDirectory, DirectoryInfo? ownLog)
    {
        LogDirectory = logDirectory;
        _ownLog = ownLog;
        Port = FreeLoopbackPort();
        Http = new HttpClient { BaseAddress = Url, Timeout = TimeSpan.FromSeconds(60) };
    }

    public int Port { get; }

    public Uri Url => new($"http://127.0.0.1:{Port}/");

    public string LogDirectory { get; }

    /// <summary>A client of the server (its own connection pool).</summary>
    public HttpClient Http { get; }

    public CrashHostProcess Process => _process ?? throw new InvalidOperationException("Not started.");

    /// <summary>Whether the process is still running (a limit must not take it down).</summary>
    public bool IsRunning => Process.ExitCode is null;

    /// <summary>Starts the server with <paramref name="settings"/> (<c>--Key=Value</c>) on a temporary log directory, or on <paramref name="logDirectory"/>.</summary>
    public static async Task<ServerProcess> StartAsync(IReadOnlyList<string> settings, string? logDirectory = null)
    {
        var ownLog = logDirectory is null ? Directory.CreateTempSubdirectory("twopc-limits-") : null;
        var server = new ServerProcess(logDirectory ?? ownLog!.FullName, ownLog);
        try
        {
            await server.StartAsync(settings);
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }

        return server;
    }

    private async Task StartAsync(IReadOnlyList<string> settings)
    {
        _process = CrashHostProcess.StartProgram(Path.Combine("Coordinator", "TwoPC.Coordinator.Server"), [
            $"--Urls=http://127.0.0.1:{Port}",
            "--TwoPC:NodeId=limits-" + Guid.NewGuid().ToString("N")[..8],
            $"--TwoPC:LogDirectory={LogDirectory}",
            "--TwoPC:RetryBaseDelay=00:00:00.050",
            "--TwoPC:RetryMaxDelay=00:00:00.300",
            "--Admin:ApiKey=limits-test-admin-key",
            "--Logging:LogLevel:Default=Warning",
            "--Logging:LogLevel:Microsoft.Hosting.Lifetime=Information",
            .. settings,
        ]);
        var ready = await _process.WaitForLineAsync(TimeSpan.FromSeconds(60), "Now listening on:", "      Now listening on:");
        Assert.True(ready is not null, "The coordinator server did not start.\n" + _process.Describe());
        using var probe = new HttpClient { BaseAddress = Url };
        await Eventually.TrueAsync(async () => (await probe.GetAsync("health")).IsSuccessStatusCode, TimeSpan.FromSeconds(30), _process.Describe);
    }

    /// <summary>The process's resident set size in KiB (VmRSS of /proc/{pid}/status).</summary>
    public long RssKiB() => ReadStatusKiB("VmRSS:");

    /// <summary>How many file descriptors the process holds (/proc/{pid}/fd).</summary>
    public int OpenFileDescriptors() => Directory.GetFileSystemEntries($"/proc/{ProcessId()}/fd").Length;

    /// <summary>Sends <paramref name="head"/> (request line and headers, CRLF-separated, without the blank line) and <paramref name="body"/> on a fresh connection; returns the status and body of the answer.</summary>
    public async Task<(int Status, string Headers, string Body)> RawAsync(string head, ReadOnlyMemory<byte> body, TimeSpan? pause = null)
    {
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, Port);
        var stream = client.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(head + "\r\n\r\n"));
        try
        {
            await stream.WriteAsync(body);
            if (pause is { } wait)
            {
                await Task.Delay(wait);
            }
        }
        catch (IOException)
        {
            // The server may answer and close before the whole body is sent; its answer is still readable.
        }

        return await ReadResponseAsync(stream);
    }

    /// <summary>Reads one HTTP/1.1 response (Content-Length or until close) from <paramref name="stream"/>.</summary>
    public static async Task<(int Status, string Headers, string Body)> ReadResponseAsync(Stream stream)
    {
        var buffer = new MemoryStream();
        var chunk = new byte[8192];
        int headerEnd;
        while ((headerEnd = IndexOfBlankLine(buffer)) < 0)
        {
            var read = await stream.ReadAsync(chunk);
            if (read == 0)
            {
                throw new IOException("The server closed the connection without a complete response: " + Encoding.ASCII.GetString(buffer.ToArray()));
            }

            buffer.Write(chunk, 0, read);
        }

        var all = buffer.ToArray();
        var headers = Encoding.ASCII.GetString(all, 0, headerEnd);
        var status = int.Parse(headers.Split(' ', 3)[1], CultureInfo.InvariantCulture);
        var length = headers.Split("\r\n").Select(l => l.Split(':', 2)).Where(p => p.Length == 2 && p[0].Trim().Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
            .Select(p => (int?)int.Parse(p[1].Trim(), CultureInfo.InvariantCulture)).FirstOrDefault();
        var body = new MemoryStream();
        body.Write(all, headerEnd + 4, all.Length - headerEnd - 4);
        while (length is null ? !EndsWithLastChunk(body) : body.Length < length)
        {
            int read;
            try
            {
                read = await stream.ReadAsync(chunk);
            }
            catch (IOException)
            {
                break;
            }

            if (read == 0)
            {
                break;
            }

            body.Write(chunk, 0, read);
        }

        var chunked = headers.Contains("Transfer-Encoding: chunked", StringComparison.OrdinalIgnoreCase);
        return (status, headers, Encoding.UTF8.GetString(chunked ? Dechunk(body.ToArray()) : body.ToArray()));
    }

    // The body of a chunked response: hex size line, data, CRLF, ... until the zero-size chunk (or the end of what was read).
    private static byte[] Dechunk(byte[] raw)
    {
        var output = new MemoryStream();
        var position = 0;
        while (position < raw.Length)
        {
            var lineEnd = raw.AsSpan(position).IndexOf("\r\n"u8);
            if (lineEnd < 0)
            {
                break;
            }

            var size = int.Parse(Encoding.ASCII.GetString(raw, position, lineEnd).Split(';')[0].Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            position += lineEnd + 2;
            if (size == 0)
            {
                break;
            }

            output.Write(raw, position, Math.Min(size, raw.Length - position));
            position += size + 2;
        }

        return output.ToArray();
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        _process?.Dispose();
        await Task.Yield();
        try
        {
            _ownLog?.Delete(recursive: true);
        }
        catch (IOException)
        {
            // A test's leftovers in /tmp do no harm.
        }
    }

    private int ProcessId() => Process.ProcessId;

    private long ReadStatusKiB(string field)
    {
        var line = File.ReadLines($"/proc/{ProcessId()}/status").First(l => l.StartsWith(field, StringComparison.Ordinal));
        return long.Parse(line[field.Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
    }

    private static bool EndsWithLastChunk(MemoryStream body) =>
        body.GetBuffer().AsSpan(0, (int)body.Length).EndsWith("\r\n0\r\n\r\n"u8) || body.GetBuffer().AsSpan(0, (int)body.Length).SequenceEqual("0\r\n\r\n"u8);

    private static int IndexOfBlankLine(MemoryStream buffer)
    {
        var bytes = buffer.GetBuffer().AsSpan(0, (int)buffer.Length);
        return bytes.IndexOf("\r\n\r\n"u8);
    }

    private static int FreeLoopbackPort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }
}
