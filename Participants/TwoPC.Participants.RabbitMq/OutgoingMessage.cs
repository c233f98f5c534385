using System.Text;

namespace TwoPC.Participants.RabbitMq;

/// <summary>A message staged in a global transaction, published when (and only when) it commits.</summary>
/// <param name="Exchange">The exchange to publish to (must exist when the branch prepares; "" is the default exchange).</param>
/// <param name="RoutingKey">The routing key.</param>
/// <param name="Body">The message body.</param>
/// <param name="Headers">Application headers, or <see langword="null"/>.</param>
/// <param name="ContentType">The content type, or <see langword="null"/>.</param>
/// <param name="Type">The message type (AMQP <c>type</c> property), or <see langword="null"/>.</param>
/// <remarks>
/// The exchange, routing key, content type, type and header names are AMQP short strings: at most
/// <see cref="MaxShortStringBytes"/> bytes of UTF-8 each (not characters: "é" takes two).
/// <see cref="RabbitMqBranch.Publish(OutgoingMessage)"/> refuses a message that breaks a limit (see <see cref="FindProblem"/>),
/// so one that the client library could never encode can never reach the commit decision.
/// </remarks>
public sealed record OutgoingMessage(
    string Exchange,
    string RoutingKey,
    ReadOnlyMemory<byte> Body,
    IReadOnlyDictionary<string, string>? Headers = null,
    string? ContentType = null,
    string? Type = null)
{
    /// <summary>The most bytes (UTF-8) an AMQP 0-9-1 short string may take.</summary>
    public const int MaxShortStringBytes = 255;

    /// <summary>
    /// Why this message cannot be published as AMQP 0-9-1 (a short string longer than
    /// <see cref="MaxShortStringBytes"/> bytes, a missing exchange or routing key, an empty header name), or
    /// <see langword="null"/> when it can.
    /// </summary>
    public string? FindProblem()
    {
        if (Exchange is null || RoutingKey is null)
        {
            return "the exchange and the routing key are required (\"\" is allowed)";
        }

        if ((ShortStringProblem("exchange", Exchange) ?? ShortStringProblem("routing key", RoutingKey)
            ?? ShortStringProblem("content type", ContentType) ?? ShortStringProblem("type", Type)) is { } problem)
        {
            return problem;
        }

        foreach (var (name, value) in Headers ?? new Dictionary<string, string>())
        {
            if (string.IsNullOrEmpty(name))
            {
                return "a header name is empty";
            }

            if (value is null)
            {
                return $"header '{Shorten(name)}' has no value";
            }

            if (ShortStringProblem("header name", name) is { } header)
            {
                return header;
            }
        }

        return null;
    }

    /// <summary>Why <paramref name="value"/> cannot be the AMQP short string <paramref name="what"/>, or <see langword="null"/>.</summary>
    internal static string? ShortStringProblem(string what, string? value)
    {
        if (value is null)
        {
            return null;
        }

        var bytes = Encoding.UTF8.GetByteCount(value);
        return bytes > MaxShortStringBytes
            ? $"the {what} '{Shorten(value)}' is {bytes} bytes of UTF-8; AMQP allows at most {MaxShortStringBytes}"
            : null;
    }

    private static string Shorten(string value) => value.Length <= 40 ? value : string.Concat(value.AsSpan(0, 40), "…");
}
