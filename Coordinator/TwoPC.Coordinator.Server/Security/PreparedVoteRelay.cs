using System.Text.Json;
using Microsoft.Extensions.Options;
using TwoPC.Client;
using TwoPC.Transactions;

namespace TwoPC.Coordinator.Server.Security;

/// <summary>
/// Participants' Yes votes relayed by the client with its commit (<see cref="TwoPCHeaders.PreparedVote"/>): each is the
/// signature headers and body of a <c>POST /transactions/{id}/branches/{xid}/prepared</c> call the participant signed with
/// its own key, checked here exactly as <see cref="ParticipantSignatureAuthenticationHandler"/> checks that call (the key id
/// names a participant configured with a key; the signature holds for this method, this path — so this transaction and
/// this XID — and this body, within the clock-skew window) and then counted as that call would be. One that does not hold
/// is ignored: the coordinator asks that branch by callback, so a client can withhold a vote but never forge or move one.
/// </summary>
internal static class PreparedVoteRelay
{
    private const int MaxVotes = 256;
    private const int MaxBodyBytes = 16 * 1024;

    /// <summary>Counts the relayed votes that hold; returns how many were taken.</summary>
    public static int Apply(HttpContext http, GlobalTransactionId transactionId, IReadOnlyList<string> votes, TransactionRegistry registry)
    {
        var services = http.RequestServices;
        var participants = services.GetRequiredService<ParticipantDirectory>();
        var clockSkew = services.GetRequiredService<IOptionsMonitor<ParticipantSignatureOptions>>().Get(ApiAuthentication.ParticipantScheme).ClockSkew;
        var now = (services.GetService<TimeProvider>() ?? TimeProvider.System).GetUtcNow();
        var logger = services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(PreparedVoteRelay).FullName!);
        var taken = 0;
        foreach (var vote in votes.Take(MaxVotes))
        {
            if (Check(vote, transactionId, http.Request.PathBase, participants, now, clockSkew) is not { } checkedVote)
            {
                Log.RelayedVoteIgnored(logger, transactionId.ToString());
                continue;
            }

            if (registry.TryGetRemote(checkedVote.Participant, out var remote) && remote.TryReportPrepared(checkedVote.Xid, checkedVote.RecoveryData))
            {
                taken++;
            }
        }

        return taken;
    }

    private static (string Participant, Xid Xid, string? RecoveryData)? Check(string vote, GlobalTransactionId transactionId, PathString pathBase, ParticipantDirectory participants, DateTimeOffset now, TimeSpan clockSkew)
    {
        var parts = vote?.Split(';');
        if (parts is not { Length: 5 } || RequestSignature.ParseKeyId(parts[0]) is not { } keyId)
        {
            return null;
        }

        string xidText;
        try
        {
            xidText = Uri.UnescapeDataString(parts[1]);
        }
        catch (UriFormatException)
        {
            return null;
        }

        var body = new byte[MaxBodyBytes];
        if (!Xid.TryParse(xidText, out var xid) || xid.TryGetGlobalTransactionId() != transactionId
            || !participants.TryGet(keyId, out var participant) || participant.Key is null
            || !Convert.TryFromBase64String(parts[4], body, out var length))
        {
            return null;
        }

        var target = pathBase + "/transactions/" + Uri.EscapeDataString(transactionId.ToString()) + "/branches/" + Uri.EscapeDataString(xidText) + "/prepared";
        if (RequestSignature.Verify(keyId, participant.Key, HttpMethods.Post, target, parts[2], parts[3], body.AsSpan(0, length), now, clockSkew) != SignatureCheck.Valid)
        {
            return null;
        }

        ReportPreparedRequest? report;
        try
        {
            report = JsonSerializer.Deserialize<ReportPreparedRequest>(body.AsSpan(0, length), TwoPCJson.Options);
        }
        catch (JsonException)
        {
            return null;
        }

        return report is not null && string.Equals(report.ResourceManager, keyId, StringComparison.Ordinal)
            && (report.RecoveryData is null || HttpParticipantResourceManager.IsValidRecoveryData(report.RecoveryData))
            ? (keyId, xid, report.RecoveryData)
            : null;
    }
}
