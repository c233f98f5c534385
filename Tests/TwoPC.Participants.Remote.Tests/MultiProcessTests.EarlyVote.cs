using System.Net;
using TwoPC.Client;
using TwoPC.Testing;

namespace TwoPC.Participants.Remote.Tests;

// Issue 13, item 3: crashes around a Yes vote the coordinator got without a prepare callback (relayed with the commit).
public sealed partial class MultiProcessTests
{
    [Fact]
    public async Task Participant_killed_after_prepare_whose_vote_was_relayed_commits_when_it_restarts()
    {
        await using var tx = await _client.BeginAsync(TimeSpan.FromSeconds(30));
        await PostEntryAsync(_alpha, tx, "a-11", 10, HttpStatusCode.OK);
        await PostEntryAsync(_beta, tx, "b-11", -10, HttpStatusCode.OK);
        _beta.Kill(); // prepared, its signed Yes vote in the caller's hands, its service gone

        // The coordinator needs no callback to know beta's vote: it decides commit, and retries beta's commit until it is back.
        var commit = tx.CommitAsync();
        await Eventually.TrueAsync(async () => (await _client.GetStatusAsync(tx.Id)).State == TransactionStateDto.Committing, TimeSpan.FromSeconds(30), _coordinator.Process.Describe);
        Assert.Equal(1, await _beta.PreparedAsync());

        await _beta.StartAsync();

        var outcome = await commit.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(OutcomeKindDto.Committed, outcome.Kind);
        Assert.Equal(1, await _alpha.CountAsync("a-11"));
        await Eventually.TrueAsync(async () => await _beta.CountAsync("b-11") == 1, TimeSpan.FromSeconds(30), _beta.Process.Describe);
        Assert.Equal(0, await _beta.PreparedAsync());
        Assert.Equal(0, await _alpha.PreparedAsync());
    }
}
