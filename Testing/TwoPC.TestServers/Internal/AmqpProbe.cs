using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;

namespace TwoPC.TestServers.Internal;

/// <summary>What an AMQP 0-9-1 broker said in its Connection.Start.</summary>
internal sealed record AmqpGreeting(string? Product, string? Version, string? ClusterName);

/// <summary>
/// A client-free readiness check: opens a TCP connection, sends the AMQP 0-9-1 protocol header and
/// reads the broker's Connection.Start (product, version, cluster name from its server
/// properties), then hangs up. A broker answers only once its listener is up, i.e. late in boot.
/// </summary>
internal static class AmqpProbe
{
    private const byte MethodFrame = 1;
    private const byte FrameEnd = 0xCE;
    private const int MaxFrameSize = 128 * 1024;
    private static readonly byte[] ProtocolHeader = "AMQP"u8.ToArray().Concat(new byte[] { 0, 0, 9, 1 }).ToArray();

    /// <summary>The greeting, or null with an error saying why there was none.</summary>
    public static async Task<(AmqpGreeting? Greeting, string? Error)> TryGreetAsync(string host, int port, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var timeoutSource = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeoutSource.CancelAfter(timeout);
        try
        {
            using var client = new TcpClient(AddressFamily.InterNetwork) { NoDelay = true, LingerState = new LingerOption(true, 0) };
            await client.ConnectAsync(host, port, timeoutSource.Token).ConfigureAwait(false);
            var stream = client.GetStream();
            await stream.WriteAsync(ProtocolHeader, timeoutSource.Token).ConfigureAwait(false);

            var header = new byte[7];
            await stream.ReadExactlyAsync(header, timeoutSource.Token).ConfigureAwait(false);
            if (header.AsSpan(0, 4).SequenceEqual("AMQP"u8))
            {
                return (null, "the server rejected the protocol header (it speaks another AMQP version)");
            }

            var size = BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(3));
            if (header[0] != MethodFrame || size is < 4 or > MaxFrameSize)
            {
                return (null, $"unexpected first frame (type {header[0]}, size {size})");
            }

            var payload = new byte[size + 1];
            await stream.ReadExactlyAsync(payload, timeoutSource.Token).ConfigureAwait(false);
            if (payload[^1] != FrameEnd || BinaryPrimitives.ReadUInt16BigEndian(payload) != 10 || BinaryPrimitives.ReadUInt16BigEndian(payload.AsSpan(2)) != 10)
            {
                return (null, "the first frame is not Connection.Start");
            }

            // class, method, version-major, version-minor, then the server-properties table.
            var properties = ReadTable(payload.AsSpan(6, size - 6));
            return (new AmqpGreeting(properties.GetValueOrDefault("product"), properties.GetValueOrDefault("version"), properties.GetValueOrDefault("cluster_name")), null);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return (null, $"no Connection.Start within {timeout.TotalSeconds:F0} s");
        }
        catch (Exception ex) when (ex is SocketException or IOException or EndOfStreamException)
        {
            return (null, ex.Message);
        }
    }

    /// <summary>The long-string entries of an AMQP field table; parsing stops at the first type it does not know.</summary>
    private static Dictionary<string, string> ReadTable(ReadOnlySpan<byte> data)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        if (data.Length < 4)
        {
            return result;
        }

        var length = (int)Math.Min(BinaryPrimitives.ReadUInt32BigEndian(data), (uint)(data.Length - 4));
        var table = data.Slice(4, length);
        var position = 0;
        while (position < table.Length)
        {
            int nameLength = table[position++];
            if (position + nameLength + 1 > table.Length)
            {
                break;
            }

            var name = Encoding.UTF8.GetString(table.Slice(position, nameLength));
            position += nameLength;
            var type = (char)table[position++];
            switch (type)
            {
                case 'S' or 'x' or 'F' or 'A' when position + 4 <= table.Length:
                    var valueLength = (int)Math.Min(BinaryPrimitives.ReadUInt32BigEndian(table[position..]), (uint)(table.Length - position - 4));
                    if (type == 'S')
                    {
                        result[name] = Encoding.UTF8.GetString(table.Slice(position + 4, valueLength));
                    }

                    position += 4 + valueLength;
                    break;
                case 't' or 'b' or 'B':
                    position += 1;
                    break;
                case 's' or 'u':
                    position += 2;
                    break;
                case 'I' or 'i' or 'f':
                    position += 4;
                    break;
                case 'l' or 'd' or 'T':
                    position += 8;
                    break;
                case 'V':
                    break;
                default:
                    return result;
            }
        }

        return result;
    }
}
