using Dapper;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Npgsql;
using TwoPC.Participants.Remote;

namespace TwoPC.RemoteHost;

/// <summary>
/// A ledger service: <c>POST /entries</c> writes one row in a branch of the caller's global transaction
/// (<c>fail: true</c> makes the handler answer 422 after writing, so the branch rolls back and votes No).
/// <c>POST /plain-entries</c> writes the same row in a local transaction (a non-atomic baseline for benchmarks).
/// Settings: <c>ConnectionString</c>, <c>TwoPC:Participant:*</c>, <c>Urls</c>.
/// Test control: <c>POST /test/hold-next-commit</c> makes the next commit callback print <c>commit-held {xid}</c>
/// and wait until its caller goes away (a coordinator SIGKILLed mid-phase-2), without committing.
/// <c>POST /test/fail-next-commit</c> makes the next commit callback answer 503 without committing (and print <c>commit-failed</c>).
/// </summary>
public static class LedgerService
{
    public static WebApplication Build(string[] args)
    {
        var builder = WebApplication.CreateBuilder(args);
        var connectionString = builder.Configuration["ConnectionString"] ?? throw new InvalidOperationException("ConnectionString is required.");
        builder.Services.AddSingleton(_ => NpgsqlDataSource.Create(connectionString));
        builder.Services.AddTwoPCRemoteParticipant(sp => sp.GetRequiredService<NpgsqlDataSource>(), builder.Configuration.GetSection("TwoPC:Participant"));
        builder.Services.AddSingleton<HoldFlag>();
        builder.Services.AddSingleton<FailFlag>();
        builder.Services.AddProblemDetails();

        var app = builder.Build();
        app.Lifetime.ApplicationStarted.Register(() =>
        {
            var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault();
            Console.WriteLine($"ready {address}");
        });

        using (var connection = app.Services.GetRequiredService<NpgsqlDataSource>().OpenConnection())
        {
            connection.Execute("CREATE TABLE IF NOT EXISTS entries (id text PRIMARY KEY, amount int NOT NULL)");
        }

        app.UseExceptionHandler();
        app.Use(async (context, next) =>
        {
            var hold = context.RequestServices.GetRequiredService<HoldFlag>();
            var fail = context.RequestServices.GetRequiredService<FailFlag>();
            if (context.Request.Path.StartsWithSegments("/twopc/commit", StringComparison.Ordinal) && fail.TryTake())
            {
                Console.WriteLine("commit-failed");
                context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
                return;
            }

            if (context.Request.Path.StartsWithSegments("/twopc/commit", StringComparison.Ordinal) && hold.TryTake())
            {
                Console.WriteLine("commit-held");
                try
                {
                    await Task.Delay(Timeout.Infinite, context.RequestAborted);
                }
                catch (OperationCanceledException)
                {
                }

                return;
            }

            await next(context);
        });

        app.MapTwoPCParticipant("/twopc");
        app.MapPost("/entries", async (Entry entry, RemoteBranch branch) =>
        {
            await branch.Connection.ExecuteAsync("INSERT INTO entries (id, amount) VALUES (@Id, @Amount)", entry, branch.Transaction);
            return entry.Fail ? Results.UnprocessableEntity(new { error = "asked to fail" }) : Results.Ok(new { branch.Xid });
        }).AsTwoPCBranch();
        app.MapPost("/plain-entries", async (Entry entry, NpgsqlDataSource dataSource) =>
        {
            // The same write in a local transaction, outside any global transaction (the benchmark's non-atomic baseline).
            await using var connection = await dataSource.OpenConnectionAsync();
            await connection.ExecuteAsync("INSERT INTO entries (id, amount) VALUES (@Id, @Amount)", entry);
            return Results.Ok();
        });
        app.MapPost("/test/hold-next-commit", (HoldFlag hold) =>
        {
            hold.Set();
            return Results.NoContent();
        });
        app.MapPost("/test/fail-next-commit", (FailFlag fail) =>
        {
            fail.Set();
            return Results.NoContent();
        });
        return app;
    }

    public sealed record Entry(string Id, int Amount, bool Fail = false);

    private class HoldFlag
    {
        private int _set;

        public void Set() => Interlocked.Exchange(ref _set, 1);

        public bool TryTake() => Interlocked.Exchange(ref _set, 0) == 1;
    }

    private sealed class FailFlag : HoldFlag;
}
