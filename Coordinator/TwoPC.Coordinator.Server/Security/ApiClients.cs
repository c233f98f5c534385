using System.Security.Cryptography;
using System.Text;
using TwoPC.Client;

namespace TwoPC.Coordinator.Server.Security;

/// <summary>
/// The API keys of the clients (<c>Coordinator:Clients:{name}:ApiKey</c>) and the operator's admin key
/// (<c>Admin:ApiKey</c>), kept as SHA-256 digests and compared in fixed time against every entry, so neither the
/// comparison nor the lookup tells how much of a guessed key was right.
/// </summary>
internal sealed class ApiClients
{
    private readonly (string Name, byte[] Digest)[] _clients;
    private readonly byte[]? _admin;

    private ApiClients((string Name, byte[] Digest)[] clients, byte[]? admin)
    {
        _clients = clients;
        _admin = admin;
    }

    /// <summary>How many clients are configured.</summary>
    public int Count => _clients.Length;

    /// <summary>Reads and checks the keys; every client key must be usable (<see cref="RequestSignature.IsUsableKey"/>) and distinct.</summary>
    /// <param name="configuration">The root configuration.</param>
    /// <exception cref="InvalidOperationException">A key is missing, short, a placeholder or shared: the message names it.</exception>
    public static ApiClients FromConfiguration(IConfiguration configuration)
    {
        var clients = new List<(string Name, byte[] Digest)>();
        foreach (var client in configuration.GetSection("Coordinator:Clients").GetChildren())
        {
            var key = client["ApiKey"];
            if (!RequestSignature.IsUsableKey(key, out var problem))
            {
                throw new InvalidOperationException($"Coordinator:Clients:{client.Key}:ApiKey is not usable: {problem}.");
            }

            var digest = Digest(key!);
            if (clients.Any(c => CryptographicOperations.FixedTimeEquals(c.Digest, digest)))
            {
                throw new InvalidOperationException($"Coordinator:Clients:{client.Key}:ApiKey is the key of another client: give every client its own key.");
            }

            clients.Add((client.Key, digest));
        }

        var admin = configuration["Admin:ApiKey"];
        return new ApiClients([.. clients], string.IsNullOrEmpty(admin) ? null : Digest(admin));
    }

    /// <summary>The client whose key <paramref name="presented"/> is.</summary>
    public bool TryFindClient(string presented, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out string? name)
    {
        var digest = Digest(presented);
        name = null;

        // Every entry is compared, whichever matches.
        foreach (var (clientName, clientDigest) in _clients)
        {
            if (CryptographicOperations.FixedTimeEquals(clientDigest, digest))
            {
                name = clientName;
            }
        }

        return name is not null;
    }

    /// <summary>Whether <paramref name="presented"/> is the admin key (never, with no admin key configured).</summary>
    public bool IsAdmin(string presented) => _admin is not null && CryptographicOperations.FixedTimeEquals(_admin, Digest(presented));

    private static byte[] Digest(string key) => SHA256.HashData(Encoding.UTF8.GetBytes(key));
}
