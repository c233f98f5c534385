using System.Text;
using TwoPC.Client;

namespace TwoPC.Coordinator.Server.Tests;

/// <summary>The per-call signature: valid only for the key, the method, the path, the body and the time it was made for.</summary>
public sealed class RequestSignatureTests
{
    private const string Key = "k3y-of-payments-0123456789abcdefghijklmnop";
    private const string OtherKey = "k3y-of-shipping-0123456789abcdefghijklmnop";
    private static readonly DateTimeOffset Now = new(2026, 12, 2, 9, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task A_signed_call_verifies_only_as_it_was_signed()
    {
        var signed = await SignAsync("commit", """{"xid":"a"}""", Key);

        Assert.Equal(SignatureCheck.Valid, Verify(signed, "/twopc/commit", """{"xid":"a"}""", Key, Now.AddSeconds(10)));
        Assert.Equal(SignatureCheck.Invalid, Verify(signed, "/twopc/commit", """{"xid":"a"}""", OtherKey, Now));   // another participant's key
        Assert.Equal(SignatureCheck.Invalid, Verify(signed, "/twopc/rollback", """{"xid":"a"}""", Key, Now));     // another action
        Assert.Equal(SignatureCheck.Invalid, Verify(signed, "/twopc/commit", """{"xid":"b"}""", Key, Now));       // another branch
        Assert.Equal(SignatureCheck.Expired, Verify(signed, "/twopc/commit", """{"xid":"a"}""", Key, Now.AddMinutes(6)));
        Assert.Equal(SignatureCheck.Expired, Verify(signed, "/twopc/commit", """{"xid":"a"}""", Key, Now.AddMinutes(-6)));
        Assert.Equal("payments", RequestSignature.ParseKeyId(Header(signed, RequestSignature.KeyIdHeader)));
    }

    [Fact]
    public void Calls_without_or_with_broken_headers_are_refused_with_the_reason()
    {
        var body = Encoding.UTF8.GetBytes("{}");
        Assert.Equal(SignatureCheck.Missing, RequestSignature.Verify("payments", Key, "POST", "/twopc/commit", null, null, body, Now, RequestSignature.DefaultClockSkew));
        Assert.Equal(SignatureCheck.Malformed, RequestSignature.Verify("payments", Key, "POST", "/twopc/commit", "-5", "AAAA", body, Now, RequestSignature.DefaultClockSkew));
        Assert.Equal(SignatureCheck.Malformed, RequestSignature.Verify("payments", Key, "POST", "/twopc/commit", Now.ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture), "not base64!", body, Now, RequestSignature.DefaultClockSkew));
        Assert.Equal(SignatureCheck.Expired, RequestSignature.Verify("payments", Key, "POST", "/twopc/commit", long.MaxValue.ToString(System.Globalization.CultureInfo.InvariantCulture), "AAAA", body, Now, RequestSignature.DefaultClockSkew));
        Assert.Null(RequestSignature.ParseKeyId("%0A"));
        Assert.Equal("a b,c", RequestSignature.ParseKeyId(Uri.EscapeDataString("a b,c")));
    }

    [Theory]
    [InlineData(null, false)]
    [InlineData("short", false)]
    [InlineData("change-me-too-change-me-too-change-me-too", false)]
    [InlineData("xJ3q9Yb1rWm0uQ2d8Zk7Lh4Tn6Pc5Vs0Ae1Ff2Gg3Hh=", true)]
    public void Placeholder_and_short_keys_are_not_usable(string? key, bool usable)
    {
        Assert.Equal(usable, RequestSignature.IsUsableKey(key, out var problem));
        Assert.Equal(usable, problem.Length == 0);
    }

    private static async Task<HttpRequestMessage> SignAsync(string action, string body, string key)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, new Uri($"http://127.0.0.1:5102/twopc/{action}"))
        {
            Content = new StringContent(body, Encoding.UTF8, "application/json"),
        };
        await RequestSignature.SignAsync(request, "payments", key, Now, CancellationToken.None);
        return request;
    }

    private static SignatureCheck Verify(HttpRequestMessage signed, string path, string body, string key, DateTimeOffset now) =>
        RequestSignature.Verify("payments", key, "POST", path, Header(signed, RequestSignature.TimestampHeader), Header(signed, RequestSignature.SignatureHeader),
            Encoding.UTF8.GetBytes(body), now, RequestSignature.DefaultClockSkew);

    private static string? Header(HttpRequestMessage request, string name) =>
        request.Headers.TryGetValues(name, out var values) ? values.Single() : null;
}
