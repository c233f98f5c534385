using System.Reflection;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace TwoPC.Client;

/// <summary>
/// Writes an enum of the wire contract as its word (its <see cref="JsonStringEnumMemberNameAttribute"/>, else its name)
/// and reads it back ignoring case, as the coordinator always read outcomes. Anything else, a number included, is a
/// <see cref="JsonException"/>: the text on the wire is the contract, and a number would let the two sides drift silently.
/// </summary>
/// <typeparam name="TEnum">The enum.</typeparam>
internal sealed class WireEnumConverter<TEnum> : JsonConverter<TEnum>
    where TEnum : struct, Enum
{
    private static readonly (TEnum Value, string Word)[] Words = [.. Enum.GetValues<TEnum>().Select(v => (v, WordOf(v)))];

    public override TEnum Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.String && reader.GetString() is { } text)
        {
            foreach (var (value, word) in Words)
            {
                if (string.Equals(word, text, StringComparison.OrdinalIgnoreCase))
                {
                    return value;
                }
            }
        }

        throw new JsonException($"Expected one of {string.Join(", ", Words.Select(w => w.Word))} as {typeof(TEnum).Name}.");
    }

    public override void Write(Utf8JsonWriter writer, TEnum value, JsonSerializerOptions options)
    {
        ArgumentNullException.ThrowIfNull(writer);
        foreach (var (known, word) in Words)
        {
            if (EqualityComparer<TEnum>.Default.Equals(known, value))
            {
                writer.WriteStringValue(word);
                return;
            }
        }

        throw new JsonException($"{value} is not a {typeof(TEnum).Name} of the wire contract.");
    }

    private static string WordOf(TEnum value)
    {
        var name = value.ToString();
        return typeof(TEnum).GetField(name)?.GetCustomAttribute<JsonStringEnumMemberNameAttribute>()?.Name ?? name;
    }
}
