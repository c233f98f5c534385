using System.CommandLine;
using System.Net;
using System.Text.Json;
using TwoPC.Client;

namespace TwoPC.Cli;

/// <summary>
/// <c>twopc tx ...</c>: operator commands against a running coordinator server's admin API (what waits in
/// doubt, heuristics, forcing one branch, forget, recover), through <see cref="TwoPCAdminClient"/>.
/// </summary>
internal static class TxCommands
{
    /// <summary>Exit code: done.</summary>
    public const int ExitOk = 0;

    /// <summary>Exit code: the coordinator refused (409, the safety rules), found nothing (404), or a forced branch ended otherwise than asked.</summary>
    public const int ExitRefusedOrNotFound = 1;

    /// <summary>Exit code: bad usage (arguments, no API key, or the server's 400 for a malformed id).</summary>
    public const int ExitUsage = 2;

    /// <summary>Exit code: the server is unreachable, refused the API key (401), or any other error.</summary>
    public const int ExitError = 3;

    /// <summary>The coordinator's URL when neither <c>--server</c> nor <c>TWOPC_SERVER</c> is given.</summary>
    public const string DefaultServer = "http://127.0.0.1:5080";

    internal const string ExitCodesHelp =
        "Exit codes: 0 = done; 1 = refused by the coordinator's safety rules (409), not found (404), or a forced branch ended otherwise than asked; "
        + "2 = usage (bad arguments, no API key, or a malformed id the server rejected with 400); 3 = server unreachable, wrong API key (401) or any other error.";

    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(30);

    public static Command Build(TextWriter output, TextWriter error)
    {
        var server = new Option<string>("--server")
        {
            Description = $"The coordinator's URL (default: $TWOPC_SERVER, else {DefaultServer}).",
            Recursive = true,
            DefaultValueFactory = _ => Environment.GetEnvironmentVariable("TWOPC_SERVER") is { Length: > 0 } fromEnvironment ? fromEnvironment : DefaultServer,
        };
        var apiKey = new Option<string?>("--api-key")
        {
            Description = "The admin API key, the server's Admin:ApiKey (default: $TWOPC_API_KEY).",
            Recursive = true,
            DefaultValueFactory = _ => Environment.GetEnvironmentVariable("TWOPC_API_KEY"),
        };
        var json = new Option<bool>("--json") { Description = "Write machine-readable JSON instead of tables.", Recursive = true };
        var options = new CommonOptions(server, apiKey, json, output, error);

        var tx = new Command("tx", "Operator tools for in-doubt transactions on a running coordinator server (its /admin API). " + ExitCodesHelp);
        tx.Options.Add(server);
        tx.Options.Add(apiKey);
        tx.Options.Add(json);

        var list = new Command("list", "Lists the branches waiting in doubt (phase 2 retrying a commit decision, or left alone by recovery) and the heuristic outcomes on record.");
        list.SetAction((parse, ct) => RunAsync(parse, options, needsKey: true, async (client, token) =>
        {
            var inDoubt = await client.ListInDoubtAsync(token).ConfigureAwait(false);
            var heuristics = await client.ListHeuristicsAsync(token).ConfigureAwait(false);
            TxReport.WriteList(inDoubt, heuristics, parse.GetValue(json), output);
            return ExitOk;
        }, ct));

        var id = new Argument<string>("id") { Description = "The global transaction id (node.epoch.sequence)." };
        var show = new Command("show", "Shows one transaction: its state, its branches while it is live, its outcome once known (Unknown = no record: under presumed abort, not committed).");
        show.Arguments.Add(id);
        show.SetAction((parse, ct) => RunAsync(parse, options, needsKey: false, async (client, token) =>
        {
            var status = await client.GetTransactionAsync(parse.GetValue(id)!, token).ConfigureAwait(false);
            TxReport.WriteStatus(status, parse.GetValue(json), output);
            return ExitOk;
        }, ct));

        var xid = new Argument<string>("xid") { Description = "The branch's XID ({formatId}_{gtrid}_{bqual}), as listed by 'twopc tx list'." };
        var resourceManager = new Option<string>("--resource-manager", "-r") { Description = "The registered name of the branch's resource manager.", Required = true };
        var overrideAbort = new Option<bool>("--override")
        {
            Description = "Commit a branch of a transaction the coordinator has no record of (contradicts presumed abort: only when you know every other branch committed).",
        };
        var forceCommit = new Command("force-commit", "Commits one in-doubt branch by hand. Refused when the coordinator knows its transaction is live or rolled back, or has no record of it (unless --override).");
        forceCommit.Arguments.Add(xid);
        forceCommit.Options.Add(resourceManager);
        forceCommit.Options.Add(overrideAbort);
        forceCommit.SetAction((parse, ct) => RunAsync(parse, options, needsKey: true, async (client, token) =>
        {
            var result = await client.ForceCommitAsync(parse.GetValue(xid)!, parse.GetValue(resourceManager)!, parse.GetValue(overrideAbort), token).ConfigureAwait(false);
            TxReport.WriteForced(result, parse.GetValue(json), output);
            return result.Outcome == BranchOutcomeDto.Committed ? ExitOk : ExitRefusedOrNotFound;
        }, ct));

        var forceRollback = new Command("force-rollback", "Rolls back one in-doubt branch by hand. Refused when its transaction has a commit decision on record (logged, committing or committed) or is still live.");
        forceRollback.Arguments.Add(xid);
        forceRollback.Options.Add(resourceManager);
        forceRollback.SetAction((parse, ct) => RunAsync(parse, options, needsKey: true, async (client, token) =>
        {
            var result = await client.ForceRollbackAsync(parse.GetValue(xid)!, parse.GetValue(resourceManager)!, token).ConfigureAwait(false);
            TxReport.WriteForced(result, parse.GetValue(json), output);
            return result.Outcome == BranchOutcomeDto.RolledBack ? ExitOk : ExitRefusedOrNotFound;
        }, ct));

        var forget = new Command("forget", "Forgets the heuristic outcome of a transaction once you have dealt with it (exit 1 when none is on record).");
        forget.Arguments.Add(id);
        forget.SetAction((parse, ct) => RunAsync(parse, options, needsKey: true, async (client, token) =>
        {
            var transaction = parse.GetValue(id)!;
            await client.ForgetAsync(transaction, token).ConfigureAwait(false);
            TxReport.WriteForgotten(transaction, parse.GetValue(json), output);
            return ExitOk;
        }, ct));

        var recover = new Command("recover", "Runs a recovery pass now and reports what it found and did.");
        recover.SetAction((parse, ct) => RunAsync(parse, options, needsKey: true, async (client, token) =>
        {
            var report = await client.RecoverAsync(token).ConfigureAwait(false);
            TxReport.WriteRecovery(report, parse.GetValue(json), output);
            return ExitOk;
        }, ct));

        tx.Subcommands.Add(list);
        tx.Subcommands.Add(show);
        tx.Subcommands.Add(forceCommit);
        tx.Subcommands.Add(forceRollback);
        tx.Subcommands.Add(forget);
        tx.Subcommands.Add(recover);
        return tx;
    }

    /// <summary>Whether <paramref name="command"/> is <c>tx</c> or one of its subcommands (their usage errors exit with <see cref="ExitUsage"/>).</summary>
    public static bool IsTxCommand(Command command) => command.Name == "tx" || command.Parents.OfType<Command>().Any(p => p.Name == "tx");

    private static async Task<int> RunAsync(ParseResult parse, CommonOptions options, bool needsKey, Func<TwoPCAdminClient, CancellationToken, Task<int>> run, CancellationToken cancellationToken)
    {
        var serverText = parse.GetValue(options.Server) ?? DefaultServer;
        if (!Uri.TryCreate(serverText, UriKind.Absolute, out var server) || (server.Scheme != Uri.UriSchemeHttp && server.Scheme != Uri.UriSchemeHttps))
        {
            return await FailAsync(options.Error, ExitUsage, $"--server {Quote(serverText)} is not an http or https URL.").ConfigureAwait(false);
        }

        var apiKey = parse.GetValue(options.ApiKey);
        if (needsKey && string.IsNullOrEmpty(apiKey))
        {
            return await FailAsync(options.Error, ExitUsage, "no API key: pass --api-key or set TWOPC_API_KEY (the server's Admin:ApiKey).").ConfigureAwait(false);
        }

        // A base address ending in '/' keeps any path prefix for the client's relative paths.
        var baseAddress = server.AbsoluteUri.EndsWith('/') ? server : new Uri(server.AbsoluteUri + "/");
        using var http = new HttpClient { BaseAddress = baseAddress, Timeout = RequestTimeout };
        var client = new TwoPCAdminClient(http, apiKey ?? string.Empty);
        try
        {
            return await run(client, cancellationToken).ConfigureAwait(false);
        }
        catch (TwoPCApiException ex)
        {
            var (code, hint) = ex.StatusCode switch
            {
                HttpStatusCode.NotFound or HttpStatusCode.Conflict => (ExitRefusedOrNotFound, string.Empty),
                HttpStatusCode.BadRequest => (ExitUsage, string.Empty),
                HttpStatusCode.Unauthorized => (ExitError, " (check --api-key / TWOPC_API_KEY against the server's Admin:ApiKey)"),
                _ => (ExitError, string.Empty),
            };
            return await FailAsync(options.Error, code, OneLine(ex.Message) + hint).ConfigureAwait(false);
        }
        catch (HttpRequestException ex)
        {
            return await FailAsync(options.Error, ExitError, $"cannot reach the coordinator at {server}: {OneLine(ex.Message)}").ConfigureAwait(false);
        }
        catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return await FailAsync(options.Error, ExitError, $"the coordinator at {server} did not answer within {RequestTimeout.TotalSeconds:0} s.").ConfigureAwait(false);
        }
        catch (JsonException ex)
        {
            return await FailAsync(options.Error, ExitError, $"the server at {server} did not answer with the coordinator's API: {OneLine(ex.Message)}").ConfigureAwait(false);
        }
    }

    private static async Task<int> FailAsync(TextWriter error, int code, string message)
    {
        await error.WriteLineAsync("error: " + message).ConfigureAwait(false);
        return code;
    }

    private static string OneLine(string text) => text.ReplaceLineEndings(" ");

    private static string Quote(string text) => Transactions.TransactionIdFormatException.Sanitize(text);

    private sealed record CommonOptions(Option<string> Server, Option<string?> ApiKey, Option<bool> Json, TextWriter Output, TextWriter Error);
}
