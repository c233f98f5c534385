using System.Buffers.Binary;
using System.Text;

namespace TwoPC.Participants.RabbitMq;

/// <summary>
/// The branch's recovery data: its staged messages in a compact binary form, forced to the
/// coordinator's log inside the commit decision, so a restarted coordinator can still publish them.
/// </summary>
/// <remarks>
/// Layout (little-endian): u8 version (1), u32 count, then per message: str exchange, str routing key,
/// bytes body, str content type, str type, u32 header count, header count × (str name, str value).
/// str = i32 byte length (-1 for none) + UTF-8; bytes = i32 length + bytes.
/// </remarks>
internal static class StagedMessages
{
    private const byte Version = 1;

    public static byte[] Encode(IReadOnlyList<OutgoingMessage> messages)
    {
        using var stream = new MemoryStream();
        using var writer = new BinaryWriter(stream, Encoding.UTF8);
        writer.Write(Version);
        writer.Write(messages.Count);
        foreach (var m in messages)
        {
            WriteString(writer, m.Exchange);
            WriteString(writer, m.RoutingKey);
            writer.Write(m.Body.Length);
            writer.Write(m.Body.Span);
            WriteString(writer, m.ContentType);
            WriteString(writer, m.Type);
            writer.Write(m.Headers?.Count ?? 0);
            foreach (var (name, value) in m.Headers ?? new Dictionary<string, string>())
            {
                WriteString(writer, name);
                WriteString(writer, value);
            }
        }

        writer.Flush();
        return stream.ToArray();
    }

    public static IReadOnlyList<OutgoingMessage> Decode(ReadOnlyMemory<byte> data)
    {
        var reader = new Reader(data);
        if (reader.Byte() != Version)
        {
            throw new InvalidDataException("Unknown staged-message format version.");
        }

        var count = reader.Int();
        var messages = new List<OutgoingMessage>(Math.Min(count, 1024));
        for (var i = 0; i < count; i++)
        {
            var exchange = reader.String() ?? string.Empty;
            var routingKey = reader.String() ?? string.Empty;
            var body = reader.Bytes();
            var contentType = reader.String();
            var type = reader.String();
            var headerCount = reader.Int();
            Dictionary<string, string>? headers = headerCount > 0 ? new(headerCount, StringComparer.Ordinal) : null;
            for (var h = 0; h < headerCount; h++)
            {
                headers![reader.String() ?? string.Empty] = reader.String() ?? string.Empty;
            }

            messages.Add(new OutgoingMessage(exchange, routingKey, body, headers, contentType, type));
        }

        if (!reader.AtEnd)
        {
            throw new InvalidDataException("Trailing bytes after the staged messages.");
        }

        return messages;
    }

    private static void WriteString(BinaryWriter writer, string? value)
    {
        if (value is null)
        {
            writer.Write(-1);
            return;
        }

        var bytes = Encoding.UTF8.GetBytes(value);
        writer.Write(bytes.Length);
        writer.Write(bytes);
    }

    private struct Reader(ReadOnlyMemory<byte> data)
    {
        private int _position;

        public readonly bool AtEnd => _position == data.Length;

        public byte Byte() => Take(1).Span[0];

        public int Int() => BinaryPrimitives.ReadInt32LittleEndian(Take(4).Span);

        public string? String()
        {
            var length = Int();
            return length < 0 ? null : Encoding.UTF8.GetString(Take(length).Span);
        }

        public ReadOnlyMemory<byte> Bytes() => Take(Int()).ToArray();

        private ReadOnlyMemory<byte> Take(int count)
        {
            if (count < 0 || _position + count > data.Length)
            {
                throw new InvalidDataException("Truncated staged-message data.");
            }

            var slice = data.Slice(_position, count);
            _position += count;
            return slice;
        }
    }
}
