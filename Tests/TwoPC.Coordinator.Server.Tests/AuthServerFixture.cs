using System.Net.Http.Headers;
using System.Security.Claims;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using TwoPC.Client;

namespace TwoPC.Coordinator.Server.Tests;

/// <summary>
/// The real coordinator server on a free loopback port with the transaction API authenticated: two API-key clients
/// (alpha, beta), two configured participants with their own keys (payments, shipping), JWT bearer tokens of a test
/// issuer signed with a symmetric key, and anonymous access explicitly off.
/// </summary>
public sealed class AuthServerFixture : IAsyncLifetime
{
    public const string AlphaKey = "alpha-client-key-0123456789abcdefghijklmn";
    public const string BetaKey = "beta-client-key-0123456789abcdefghijklmnop";
    public const string PaymentsKey = "payments-participant-key-0123456789abcdefgh";
    public const string ShippingKey = "shipping-participant-key-0123456789abcdefgh";
    public const string AdminKey = "admin-key-of-the-auth-tests-0123456789abc";
    public const string JwtIssuer = "twopc-test-issuer";
    public const string JwtAudience = "twopc-coordinator";

    /// <summary>The key the test issuer signs tokens with (the coordinator knows it from configuration).</summary>
    public static readonly byte[] JwtSigningKey = Encoding.UTF8.GetBytes("jwt-signing-key-of-the-tests-0123456789abcdefghijklmnopqrstuv");

    private readonly DirectoryInfo _log = Directory.CreateTempSubdirectory("twopc-auth-");
    private WebApplication? _app;

    public Uri Url { get; private set; } = null!;

    public Participants Participants { get; } = new();

    /// <summary>No credentials at all.</summary>
    public HttpClient Anonymous { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        await Participants.StartAsync();
        _app = CoordinatorServer.BuildApp([
            "--Urls=http://127.0.0.1:0",
            "--TwoPC:NodeId=auth-test",
            $"--TwoPC:LogDirectory={_log.FullName}",
            "--TwoPC:RetryMaxDelay=00:00:00.200",
            $"--Admin:ApiKey={AdminKey}",
            "--Coordinator:Authentication:AllowAnonymous=false",
            $"--Coordinator:Clients:alpha:ApiKey={AlphaKey}",
            $"--Coordinator:Clients:beta:ApiKey={BetaKey}",
            $"--Coordinator:Participants:payments:CallbackUrl={Participants.CallbackUrl("payments")}",
            $"--Coordinator:Participants:payments:Key={PaymentsKey}",
            $"--Coordinator:Participants:shipping:CallbackUrl={Participants.CallbackUrl("shipping")}",
            $"--Coordinator:Participants:shipping:Key={ShippingKey}",
            $"--Authentication:Schemes:Bearer:ValidIssuer={JwtIssuer}",
            $"--Authentication:Schemes:Bearer:ValidAudiences:0={JwtAudience}",
            $"--Authentication:Schemes:Bearer:SigningKeys:0:Issuer={JwtIssuer}",
            $"--Authentication:Schemes:Bearer:SigningKeys:0:Value={Convert.ToBase64String(JwtSigningKey)}",
            "--Logging:LogLevel:Default=Warning",
        ]);
        await _app.StartAsync();
        Url = new Uri(ServerFixture.BoundAddress(_app) + "/");
        Anonymous = new HttpClient { BaseAddress = Url };
    }

    public async Task DisposeAsync()
    {
        Anonymous?.Dispose();
        await Participants.DisposeAsync();
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }

        _log.Delete(recursive: true);
    }

    /// <summary>A client of the API sending <c>Authorization: ApiKey {key}</c> on every request.</summary>
    public TwoPCClient Client(string apiKey) =>
        new(new HttpClient(new ApiKeyHandler(apiKey, new SocketsHttpHandler())) { BaseAddress = Url });

    /// <summary>A participant's client of the API, every request signed with its key (what the participant SDK does).</summary>
    public HttpClient Participant(string name, string key) =>
        new(new RequestSigningHandler(name, key, TimeProvider.System) { InnerHandler = new SocketsHttpHandler() }) { BaseAddress = Url };

    /// <summary>A client sending a bearer token.</summary>
    public HttpClient Bearer(string token)
    {
        var http = new HttpClient { BaseAddress = Url };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return http;
    }

    /// <summary>A token of the test issuer for <paramref name="subject"/>, signed with <paramref name="key"/>.</summary>
    public static string Token(string subject, byte[] key, TimeSpan? lifetime = null)
    {
        var now = TimeProvider.System.GetUtcNow().UtcDateTime;
        var expires = now + (lifetime ?? TimeSpan.FromMinutes(5));
        return new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Issuer = JwtIssuer,
            Audience = JwtAudience,
            Subject = new ClaimsIdentity([new Claim("sub", subject)]),
            NotBefore = expires < now ? expires.AddMinutes(-10) : now.AddSeconds(-30),
            IssuedAt = expires < now ? expires.AddMinutes(-10) : now.AddSeconds(-30),
            Expires = expires,
            SigningCredentials = new SigningCredentials(new SymmetricSecurityKey(key), SecurityAlgorithms.HmacSha256),
        });
    }
}
