using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace TwoPC.Client;

/// <summary>
/// The per-call signature between the coordinator and a remote participant: an HMAC-SHA256, under the key that
/// participant shares with the coordinator (and with nobody else), of the method, the path, a timestamp and the
/// body's hash. The key itself never crosses the wire, so a party that observes or receives a signed call learns
/// nothing it can use against another participant or for another call.
/// </summary>
/// <remarks>
/// <para>Headers: <see cref="KeyIdHeader"/> (the participant's resource manager name, URI-escaped),
/// <see cref="TimestampHeader"/> (Unix seconds) and <see cref="SignatureHeader"/> (base64).</para>
/// <para>The string signed is <c>TwoPC-HMAC-SHA256\n{keyId}\n{METHOD}\n{path and query}\n{timestamp}\n{hex SHA-256 of the body}</c>.
/// The body carries the XID, so a signature is bound to one action (the path) on one branch (the body) within the
/// clock-skew window. Re-sending a captured call inside that window repeats a call the coordinator made: every callback is
/// idempotent and carries a decision that never changes, so a replay cannot change an outcome.</para>
/// </remarks>
public static class RequestSignature
{
    /// <summary>The name of the scheme, also the first line of the signed string.</summary>
    public const string Scheme = "TwoPC-HMAC-SHA256";

    /// <summary><c>TwoPC-Key-Id</c>: whose key signed (a participant's resource manager name, URI-escaped).</summary>
    public const string KeyIdHeader = "TwoPC-Key-Id";

    /// <summary><c>TwoPC-Timestamp</c>: when the call was signed, in Unix seconds.</summary>
    public const string TimestampHeader = "TwoPC-Timestamp";

    /// <summary><c>TwoPC-Signature</c>: the base64 HMAC-SHA256 of the signed string.</summary>
    public const string SignatureHeader = "TwoPC-Signature";

    /// <summary>The shortest key accepted, in bytes of UTF-8: 32 (for example <c>openssl rand -base64 32</c>).</summary>
    public const int MinimumKeyLength = 32;

    /// <summary>How far a signed timestamp may be from the receiver's clock by default: 5 minutes.</summary>
    public static readonly TimeSpan DefaultClockSkew = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Whether <paramref name="key"/> may be used to sign: at least <see cref="MinimumKeyLength"/> bytes and not a
    /// placeholder from an example file (<c>change-me</c> and the like).
    /// </summary>
    /// <param name="key">The configured secret.</param>
    /// <param name="problem">Why it may not, for the error that refuses to start.</param>
    public static bool IsUsableKey(string? key, out string problem)
    {
        if (string.IsNullOrEmpty(key))
        {
            problem = "it is empty";
            return false;
        }

        if (key.Contains("change-me", StringComparison.OrdinalIgnoreCase) || key.Contains("changeme", StringComparison.OrdinalIgnoreCase)
            || key.Contains("placeholder", StringComparison.OrdinalIgnoreCase))
        {
            problem = "it is a placeholder from an example file; generate one with `openssl rand -base64 32`";
            return false;
        }

        if (Encoding.UTF8.GetByteCount(key) < MinimumKeyLength)
        {
            problem = $"it is shorter than {MinimumKeyLength} bytes; generate one with `openssl rand -base64 32`";
            return false;
        }

        problem = string.Empty;
        return true;
    }

    /// <summary>Adds the three signature headers to <paramref name="request"/>, reading (and buffering) its body.</summary>
    /// <param name="request">The request to sign; its <see cref="HttpRequestMessage.RequestUri"/> must be absolute.</param>
    /// <param name="keyId">The participant's resource manager name.</param>
    /// <param name="key">The participant's key.</param>
    /// <param name="now">The signer's clock.</param>
    /// <param name="cancellationToken">Cancels reading the body.</param>
    public static async Task SignAsync(HttpRequestMessage request, string keyId, string key, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(keyId);
        ArgumentNullException.ThrowIfNull(key);
        var uri = request.RequestUri ?? throw new ArgumentException("The request has no URI.", nameof(request));
        if (!uri.IsAbsoluteUri)
        {
            throw new ArgumentException("The request's URI must be absolute to be signed.", nameof(request));
        }

        var body = request.Content is null ? [] : await request.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
        var timestamp = now.ToUnixTimeSeconds();
        var signature = Compute(key, keyId, request.Method.Method, uri.PathAndQuery, timestamp, body);
        request.Headers.Remove(KeyIdHeader);
        request.Headers.Remove(TimestampHeader);
        request.Headers.Remove(SignatureHeader);
        request.Headers.TryAddWithoutValidation(KeyIdHeader, Uri.EscapeDataString(keyId));
        request.Headers.TryAddWithoutValidation(TimestampHeader, timestamp.ToString(CultureInfo.InvariantCulture));
        request.Headers.TryAddWithoutValidation(SignatureHeader, signature);
    }

    /// <summary>Reads the key id a request claims (<see cref="KeyIdHeader"/>, unescaped), or null when absent or malformed.</summary>
    public static string? ParseKeyId(string? header)
    {
        if (string.IsNullOrEmpty(header) || header.Length > 3 * 4 * ResourceManagerName.MaxLength)
        {
            return null;
        }

        try
        {
            var keyId = Uri.UnescapeDataString(header);
            return ResourceManagerName.IsValid(keyId) ? keyId : null;
        }
        catch (UriFormatException)
        {
            return null;
        }
    }

    /// <summary>
    /// Checks a received call: the timestamp within <paramref name="clockSkew"/> of <paramref name="now"/> and the
    /// signature equal (in constant time) to the one <paramref name="key"/> gives for this method, path and body.
    /// </summary>
    /// <param name="keyId">The key id the call claims (from <see cref="ParseKeyId"/>).</param>
    /// <param name="key">The key the receiver holds for <paramref name="keyId"/>.</param>
    /// <param name="method">The request method.</param>
    /// <param name="pathAndQuery">The path and query the request arrived at (path base included).</param>
    /// <param name="timestampHeader">The <see cref="TimestampHeader"/> value.</param>
    /// <param name="signatureHeader">The <see cref="SignatureHeader"/> value.</param>
    /// <param name="body">The request body as received.</param>
    /// <param name="now">The receiver's clock.</param>
    /// <param name="clockSkew">How far the timestamp may be from <paramref name="now"/>, either way.</param>
    public static SignatureCheck Verify(string keyId, string key, string method, string pathAndQuery, string? timestampHeader, string? signatureHeader,
        ReadOnlySpan<byte> body, DateTimeOffset now, TimeSpan clockSkew)
    {
        ArgumentNullException.ThrowIfNull(keyId);
        ArgumentNullException.ThrowIfNull(key);
        if (string.IsNullOrEmpty(timestampHeader) || string.IsNullOrEmpty(signatureHeader))
        {
            return SignatureCheck.Missing;
        }

        if (!long.TryParse(timestampHeader, NumberStyles.None, CultureInfo.InvariantCulture, out var timestamp)
            || signatureHeader.Length > 64)
        {
            return SignatureCheck.Malformed;
        }

        var skew = Math.Abs(now.ToUnixTimeSeconds() - timestamp);
        if (timestamp > DateTimeOffset.MaxValue.ToUnixTimeSeconds() || skew > (long)clockSkew.TotalSeconds)
        {
            return SignatureCheck.Expired;
        }

        Span<byte> given = stackalloc byte[48];
        if (!Convert.TryFromBase64String(signatureHeader, given, out var length) || length != HMACSHA256.HashSizeInBytes)
        {
            return SignatureCheck.Malformed;
        }

        var expected = Convert.FromBase64String(Compute(key, keyId, method, pathAndQuery, timestamp, body));
        return CryptographicOperations.FixedTimeEquals(expected, given[..length]) ? SignatureCheck.Valid : SignatureCheck.Invalid;
    }

    private static string Compute(string key, string keyId, string method, string pathAndQuery, long timestamp, ReadOnlySpan<byte> body)
    {
        var bodyHash = Convert.ToHexStringLower(SHA256.HashData(body));
        var signed = string.Join('\n', Scheme, keyId, method.ToUpperInvariant(), pathAndQuery, timestamp.ToString(CultureInfo.InvariantCulture), bodyHash);
        return Convert.ToBase64String(HMACSHA256.HashData(Encoding.UTF8.GetBytes(key), Encoding.UTF8.GetBytes(signed)));
    }
}
