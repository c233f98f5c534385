using Dapper;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using TwoPC.Participants.Remote;

namespace TwoPC.Samples.Readme;

/// <summary>README "As a standalone coordinator service" (a participant service) and the TwoPC.Participants.Remote package README.</summary>
public static class RemoteSnippets
{
    /// <summary>A request body.</summary>
    public sealed record Payment(string CustomerId, decimal Amount);

    /// <summary>README.md, section "As a standalone coordinator service, with remote participants".</summary>
    public static WebApplication Participant(WebApplicationBuilder builder, NpgsqlDataSource dataSource)
    {
        #region readme
        // using Dapper; using TwoPC.Participants.Remote;
        builder.Services.AddTwoPCRemoteParticipant(sp => dataSource, builder.Configuration.GetSection("TwoPC:Participant"));
        var app = builder.Build();
        app.MapTwoPCParticipant("/twopc");
        app.MapPost("/payments", async (Payment p, RemoteBranch branch) =>
        {
            await branch.Connection.ExecuteAsync("UPDATE wallets SET balance = balance - @Amount WHERE customer_id = @CustomerId", p, branch.Transaction);
            return Results.Ok();   // 2xx → PREPARE TRANSACTION now; anything else → rolled back, votes No
        }).AsTwoPCBranch();
        #endregion
        return app;
    }

    /// <summary>Participants/README.md, section "The remote participant SDK", and Participants/TwoPC.Participants.Remote/README.md.</summary>
    public static WebApplication Overview(WebApplicationBuilder builder)
    {
        #region participants
        builder.Services.AddSingleton(_ => NpgsqlDataSource.Create(builder.Configuration.GetConnectionString("Payments")!));
        builder.Services.AddTwoPCRemoteParticipant(sp => sp.GetRequiredService<NpgsqlDataSource>(),
            builder.Configuration.GetSection("TwoPC:Participant")); // Name, CoordinatorUrl, CallbackUrl, Key

        var app = builder.Build();
        app.MapTwoPCParticipant("/twopc");                       // the coordinator's prepare/commit/rollback callbacks
        app.MapPost("/payments", async (Payment p, RemoteBranch branch) =>
        {
            await branch.Connection.ExecuteAsync(
                "UPDATE wallets SET balance = balance - @Amount WHERE customer_id = @CustomerId", p, branch.Transaction);
            return Results.Ok();                                 // 2xx: the branch prepares; anything else rolls it back
        }).AsTwoPCBranch();
        #endregion
        return app;
    }
}
