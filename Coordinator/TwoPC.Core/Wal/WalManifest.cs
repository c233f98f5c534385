using System.Buffers.Binary;
using System.IO.Hashing;
using System.Text;

namespace TwoPC.Wal;

/// <summary>
/// The log's identity and its one live segment, in the <c>MANIFEST</c> file. Written to a temporary file,
/// fsynced and renamed over the old one, so it is always one whole version or the other.
/// </summary>
/// <param name="LogId">A random number chosen when the log was created; every segment header repeats it.</param>
/// <param name="CurrentSegment">The segment that holds the log (its first batch is a checkpoint of the live records).</param>
/// <param name="NodeId">The coordinator node that writes the log, or <see langword="null"/> until one opened it.</param>
internal sealed record WalManifest(ulong LogId, ulong CurrentSegment, string? NodeId)
{
    private const int FixedSize = 24;

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public byte[] Encode()
    {
        var node = NodeId is null ? [] : StrictUtf8.GetBytes(NodeId);
        if (node.Length > WalFormat.MaxNodeIdBytes)
        {
            throw new ArgumentException($"The node id is longer than {WalFormat.MaxNodeIdBytes} bytes.");
        }

        var bytes = new byte[FixedSize + node.Length + sizeof(ulong)];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, WalFormat.ManifestMagic);
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(4), WalFormat.FormatVersion);
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(6), (ushort)node.Length);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(8), LogId);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(16), CurrentSegment);
        node.CopyTo(bytes, FixedSize);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(FixedSize + node.Length), XxHash3.HashToUInt64(bytes.AsSpan(0, FixedSize + node.Length)));
        return bytes;
    }

    /// <summary>Decodes and verifies a manifest; <paramref name="problem"/> says what is wrong.</summary>
    public static bool TryDecode(ReadOnlySpan<byte> data, out WalManifest? manifest, out string problem)
    {
        manifest = null;
        if (data.Length < FixedSize + sizeof(ulong))
        {
            problem = $"the manifest is {data.Length} bytes, shorter than any manifest";
            return false;
        }

        if (BinaryPrimitives.ReadUInt32LittleEndian(data) != WalFormat.ManifestMagic)
        {
            problem = "the manifest does not start with the manifest magic";
            return false;
        }

        var nodeLength = BinaryPrimitives.ReadUInt16LittleEndian(data[6..]);
        if (data.Length != FixedSize + nodeLength + sizeof(ulong)
            || BinaryPrimitives.ReadUInt64LittleEndian(data[(FixedSize + nodeLength)..]) != XxHash3.HashToUInt64(data[..(FixedSize + nodeLength)]))
        {
            problem = "the manifest checksum does not match";
            return false;
        }

        var version = BinaryPrimitives.ReadUInt16LittleEndian(data[4..]);
        if (version != WalFormat.FormatVersion)
        {
            problem = WalFormat.UnsupportedVersion(version);
            return false;
        }

        string? node = null;
        if (nodeLength > 0)
        {
            try
            {
                node = StrictUtf8.GetString(data.Slice(FixedSize, nodeLength));
            }
            catch (DecoderFallbackException)
            {
                problem = "the manifest's node id is not UTF-8";
                return false;
            }
        }

        manifest = new WalManifest(BinaryPrimitives.ReadUInt64LittleEndian(data[8..]), BinaryPrimitives.ReadUInt64LittleEndian(data[16..]), node);
        problem = string.Empty;
        return true;
    }
}
