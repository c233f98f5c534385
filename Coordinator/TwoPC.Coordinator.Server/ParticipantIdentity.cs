using TwoPC.Client;

namespace TwoPC.Coordinator.Server;

/// <summary>A remote participant the operator configured: its name, where the coordinator calls it back, and the key only it and the coordinator hold.</summary>
/// <param name="Name">The participant's resource manager name.</param>
/// <param name="CallbackUrl">The base URL of its callbacks (<c>{CallbackUrl}/prepare</c>, <c>/commit</c>, <c>/rollback</c>).</param>
/// <param name="Key">The key its calls and the coordinator's callbacks are signed with (<see cref="RequestSignature"/>); null only when unauthenticated callbacks are allowed.</param>
public sealed record ParticipantIdentity(string Name, Uri CallbackUrl, string? Key);
