using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using TwoPC.Client;
using TwoPC.Diagnostics;
using TwoPC.Participants.PostgreSql;
using TwoPC.Transactions;

namespace TwoPC.Participants.Remote;

/// <summary>
/// A service's PostgreSQL database as a participant of global transactions run by the standalone
/// coordinator. Request handlers join with <see cref="JoinAsync(HttpContext, CancellationToken)"/> (or
/// mark the endpoint <c>AsTwoPCBranch()</c>); the coordinator calls back through the endpoints of
/// <c>MapTwoPCParticipant</c>; <see cref="RecoverAsync"/> settles prepared branches left by a crash.
/// </summary>
public sealed class RemoteParticipant : IAsyncDisposable
{
    private static readonly TimeSpan PhaseTwoGrace = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan ClockSkewMargin = TimeSpan.FromSeconds(5);
    private const int TooEarly = 425; // "still in progress": the coordinator asks again

    private static readonly ActivitySource Source = new(TwoPCTelemetry.ActivitySourceName);
    private readonly ConcurrentDictionary<string, RemoteBranch> _branches = new(StringComparer.Ordinal);
    private readonly Func<IServiceProvider, NpgsqlDataSource> _dataSource;
    private readonly IServiceProvider _services;
    private readonly ILoggerFactory _loggers;
    private readonly IMeterFactory? _meterFactory;
    private readonly ConcurrentDictionary<string, byte> _otherNodeWarned = new(StringComparer.Ordinal);
    private PostgresResourceManager? _resourceManager;

    internal RemoteParticipant(
        IOptions<RemoteParticipantOptions> options,
        TwoPCClient coordinator,
        Func<IServiceProvider, NpgsqlDataSource> dataSource,
        IServiceProvider services,
        ILoggerFactory loggers,
        IMeterFactory? meterFactory)
    {
        Options = options.Value;
        Coordinator = coordinator;
        _dataSource = dataSource;
        _services = services;
        _loggers = loggers;
        _meterFactory = meterFactory;
        Logger = loggers.CreateLogger("TwoPC.Participants.Remote");
        Metrics = new RemoteParticipantMetrics(Options.Name, meterFactory);
    }

    /// <summary>The participant's settings.</summary>
    public RemoteParticipantOptions Options { get; }

    /// <summary>The coordinator's client.</summary>
    public TwoPCClient Coordinator { get; }

    /// <summary>The PostgreSQL resource manager (available once the host has started).</summary>
    public PostgresResourceManager ResourceManager =>
        _resourceManager ?? throw new InvalidOperationException("The remote participant starts with the host; use it after startup.");

    /// <summary>Branches whose request is still working or preparing.</summary>
    public int InFlightBranches => _branches.Values.Count(b => b.IsInFlight);

    internal ILogger Logger { get; }

    internal RemoteParticipantMetrics Metrics { get; }

    /// <summary>Creates the resource manager (fails fast when <c>max_prepared_transactions</c> is 0).</summary>
    internal async Task StartAsync(CancellationToken cancellationToken)
    {
        _resourceManager = await PostgresResourceManager.CreateAsync(Options.Name, _dataSource(_services), loggerFactory: _loggers, meterFactory: _meterFactory, cancellationToken: cancellationToken).ConfigureAwait(false);
        Logger.Ready(Options.Name, Options.CoordinatorUrl!, Options.CallbackUrl!);
    }

    /// <summary>Joins the global transaction named by the request's <see cref="TwoPCHeaders.TransactionId"/> header.</summary>
    /// <exception cref="RemoteParticipantException">The header is missing or malformed (400), the transaction is unknown (404) or no longer active (409), or the coordinator is unreachable (503).</exception>
    public Task<RemoteBranch> JoinAsync(HttpContext context, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        var header = context.Request.Headers[TwoPCHeaders.TransactionId];
        if (header.Count != 1 || string.IsNullOrEmpty(header[0]))
        {
            throw new RemoteParticipantException(StatusCodes.Status400BadRequest, "Missing transaction id", $"A branch request needs exactly one {TwoPCHeaders.TransactionId} header.");
        }

        return JoinAsync(header[0]!, cancellationToken);
    }

    /// <summary>
    /// Joins global transaction <paramref name="transactionId"/>: registers this participant's branch with the
    /// coordinator (before any PREPARE, so the coordinator always knows to ask), then begins the PostgreSQL
    /// transaction under the XID it assigned.
    /// </summary>
    /// <exception cref="RemoteParticipantException">See <see cref="JoinAsync(HttpContext, CancellationToken)"/>.</exception>
    public async Task<RemoteBranch> JoinAsync(string transactionId, CancellationToken cancellationToken = default)
    {
        if (!GlobalTransactionId.TryParse(transactionId, out var id))
        {
            throw new RemoteParticipantException(StatusCodes.Status400BadRequest, "Malformed transaction id", $"{TransactionIdFormatException.Sanitize(transactionId ?? string.Empty)} is not a global transaction id.");
        }

        var rm = ResourceManager;
        var activity = Source.StartActivity("twopc.remote.branch", ActivityKind.Internal);
        activity?.SetTag("twopc.transaction_id", id.ToString());
        activity?.SetTag("twopc.resource_manager", Options.Name);
        RegisterBranchResponse registered;
        try
        {
            registered = await Coordinator.RegisterBranchAsync(id.ToString(), Options.Name, Options.CallbackUrl!, cancellationToken).ConfigureAwait(false);
        }
        catch (TwoPCApiException ex)
        {
            activity?.SetStatus(ActivityStatusCode.Error, ex.Message);
            activity?.Dispose();
            Logger.JoinRefused(id.ToString(), ex.Message);
            var status = ex.StatusCode switch
            {
                HttpStatusCode.NotFound => StatusCodes.Status404NotFound,
                HttpStatusCode.Conflict => StatusCodes.Status409Conflict,
                HttpStatusCode.BadRequest => StatusCodes.Status400BadRequest,
                _ => StatusCodes.Status503ServiceUnavailable,
            };
            throw new RemoteParticipantException(status, "Cannot join the transaction", $"The coordinator refused the branch of {id}: {ex.Message}", ex);
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
        {
            activity?.SetStatus(ActivityStatusCode.Error, ex.Message);
            activity?.Dispose();
            Logger.JoinRefused(id.ToString(), ex.Message);
            throw new RemoteParticipantException(StatusCodes.Status503ServiceUnavailable, "Coordinator unreachable", $"The coordinator at {Options.CoordinatorUrl} could not be reached: {ex.Message}", ex);
        }

        var xid = Xid.Parse(registered.Xid);
        var deadline = registered.Deadline ?? DateTimeOffset.UtcNow.AddMinutes(1);
        activity?.SetTag("twopc.xid", xid.ToString());
        PostgresBranch pg;
        try
        {
            pg = await rm.BeginBranchAsync(xid, deadline, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            // Registered but never begun: the coordinator's prepare call finds no branch and counts a No vote.
            activity?.Dispose();
            throw;
        }

        var branch = new RemoteBranch(this, id.ToString(), xid, deadline, pg, activity);
        _branches[xid.ToString()] = branch;
        Logger.Joined(branch.TransactionId, xid);
        return branch;
    }

    internal void Forget(RemoteBranch branch) => _branches.TryRemove(new KeyValuePair<string, RemoteBranch>(branch.Xid.ToString(), branch));

    /// <summary>The coordinator's prepare call: the vote of the branch's request, or from <c>pg_prepared_xacts</c> after a restart.</summary>
    internal async Task<IResult> OnPrepareAsync(Xid xid, CancellationToken cancellationToken)
    {
        if (_branches.TryGetValue(xid.ToString(), out var branch))
        {
            if (branch.VoteForCoordinator() is not { } vote)
            {
                return Answer("prepare", xid, "in progress", Results.StatusCode(TooEarly));
            }

            if (vote.Kind != Participants.VoteKind.Yes)
            {
                Forget(branch); // no phase 2 follows a No or read-only vote
            }

            // The resource's recovery data (PostgreSQL's transaction id) rides with the coordinator's decision, so a
            // repeated commit after this process restarted is still answered exactly.
            var recoveryData = vote.RecoveryData.IsEmpty ? null : Convert.ToBase64String(vote.RecoveryData.Span);
            return Answer("prepare", xid, vote.Kind.ToString(), Results.Ok(new PrepareCallbackResponse(VoteName(vote.Kind), vote.Reason, recoveryData)));
        }

        // Not in memory (this process restarted, or the request failed before joining): PostgreSQL knows.
        return await ResourceManager.IsPreparedAsync(xid, cancellationToken).ConfigureAwait(false)
            ? Answer("prepare", xid, "Yes (found prepared)", Results.Ok(new PrepareCallbackResponse(PrepareCallbackResponse.Yes)))
            : Answer("prepare", xid, "unknown branch", Results.Problem(statusCode: StatusCodes.Status409Conflict, title: "Not prepared", detail: $"Branch {xid} is not prepared here (its request failed or never finished)."));
    }

    internal async Task<IResult> OnCommitAsync(Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken)
    {
        var outcome = await ResourceManager.CommitAsync(xid, recoveryData, cancellationToken).ConfigureAwait(false);
        if (_branches.TryGetValue(xid.ToString(), out var branch))
        {
            Forget(branch);
        }

        return Answer("commit", xid, outcome.ToString(), Results.Ok(new FinishCallbackResponse(OutcomeName(outcome))));
    }

    internal async Task<IResult> OnRollbackAsync(Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken)
    {
        if (_branches.TryGetValue(xid.ToString(), out var branch))
        {
            var (inProgress, ended) = await branch.RollbackForCoordinatorAsync(cancellationToken).ConfigureAwait(false);
            if (inProgress)
            {
                return Answer("rollback", xid, "in progress", Results.StatusCode(TooEarly));
            }

            if (ended is { } outcome)
            {
                Forget(branch);
                return Answer("rollback", xid, outcome.ToString(), Results.Ok(new FinishCallbackResponse(OutcomeName(outcome))));
            }
        }

        var rolledBack = await ResourceManager.RollbackAsync(xid, recoveryData, cancellationToken).ConfigureAwait(false);
        if (branch is not null)
        {
            Forget(branch);
        }

        return Answer("rollback", xid, rolledBack.ToString(), Results.Ok(new FinishCallbackResponse(OutcomeName(rolledBack))));
    }

    /// <summary>
    /// Participant-side recovery: every TwoPC branch prepared in this database by the coordinator's node, and
    /// not still being worked on here, is settled by the coordinator's record of its transaction: committed
    /// (or committing) → COMMIT PREPARED; rolled back → ROLLBACK PREPARED; no record and older than
    /// <see cref="RemoteParticipantOptions.OrphanSafetyInterval"/> → ROLLBACK PREPARED (presumed abort);
    /// active, preparing or heuristic → left alone. Runs every <see cref="RemoteParticipantOptions.RecoveryInterval"/>.
    /// </summary>
    /// <remarks>
    /// The coordinator's node id is asked at every pass, not cached: only the node a branch's XID names can say that it
    /// has no record of the transaction. A branch of any other node (one the coordinator at
    /// <see cref="RemoteParticipantOptions.CoordinatorUrl"/> was called before it was restarted under another node id,
    /// or a coordinator this participant was never pointed at) is never presumed aborted: it is left alone, with a
    /// warning, until that node's coordinator commits or rolls it back, or an operator does.
    /// </remarks>
    /// <returns>What was done with each branch found.</returns>
    public async Task<IReadOnlyList<RemoteRecoveryResult>> RecoverAsync(CancellationToken cancellationToken = default)
    {
        PruneFinished();
        var coordinatorNode = await CoordinatorNodeAsync(cancellationToken).ConfigureAwait(false);
        var results = new List<RemoteRecoveryResult>();
        var now = DateTimeOffset.UtcNow;
        var found = await ResourceManager.RecoverAsync(cancellationToken).ConfigureAwait(false);
        var prepared = found.Select(b => b.Xid.ToString()).ToHashSet(StringComparer.Ordinal);
        foreach (var warned in _otherNodeWarned.Keys)
        {
            if (!prepared.Contains(warned))
            {
                _otherNodeWarned.TryRemove(warned, out _); // resolved since: forget it
            }
        }

        foreach (var branch in found)
        {
            var xid = branch.Xid;
            if (xid.TryGetGlobalTransactionId() is not { } id)
            {
                results.Add(new RemoteRecoveryResult(xid, "OtherCoordinator", RemoteRecoveryAction.LeftAlone));
                continue;
            }

            if (id.Node.Value != coordinatorNode)
            {
                if (_otherNodeWarned.TryAdd(xid.ToString(), 0))
                {
                    Logger.RecoveryOtherNode(Options.Name, xid, id.Node.Value, Options.CoordinatorUrl!, coordinatorNode);
                }

                results.Add(new RemoteRecoveryResult(xid, "OtherCoordinator", RemoteRecoveryAction.LeftAlone));
                continue;
            }

            // A branch this process prepared is normally finished by the coordinator's own phase-2 call: until its
            // deadline it is not even asked about. After a restart (the branch is not tracked) or past the deadline,
            // the coordinator's record decides.
            _branches.TryGetValue(xid.ToString(), out var live);
            if (live is not null && (live.IsInFlight || now <= live.Deadline))
            {
                results.Add(new RemoteRecoveryResult(xid, live.IsInFlight ? "InFlight" : "AwaitingCoordinator", RemoteRecoveryAction.LeftAlone));
                continue;
            }

            try
            {
                var status = await Coordinator.GetStatusAsync(id.ToString(), cancellationToken).ConfigureAwait(false);
                var action = status.State switch
                {
                    // Decided: the coordinator is committing it too; step in only when its call is overdue.
                    "Committing" or "Committed" when live is null || now > live.Deadline + PhaseTwoGrace => RemoteRecoveryAction.Committed,
                    "RollingBack" or "RolledBack" => RemoteRecoveryAction.RolledBack,

                    // No record: never committed (presumed abort), and none can be logged past the deadline. With the
                    // deadline known, a little past it (clock skew); otherwise once older than the safety interval.
                    "Unknown" when (live is not null ? now > live.Deadline + ClockSkewMargin : now - branch.PreparedAt > Options.OrphanSafetyInterval)
                        => RemoteRecoveryAction.RolledBack,
                    _ => RemoteRecoveryAction.LeftAlone,
                };

                if (status.State == "Unknown" && action == RemoteRecoveryAction.RolledBack
                    && await CoordinatorNodeAsync(cancellationToken).ConfigureAwait(false) != id.Node.Value)
                {
                    // Restarted under another node id while we asked: its "no record" says nothing about this node's branch.
                    results.Add(new RemoteRecoveryResult(xid, "OtherCoordinator", RemoteRecoveryAction.LeftAlone));
                    continue;
                }

                switch (action)
                {
                    case RemoteRecoveryAction.Committed:
                        await ResourceManager.CommitAsync(xid, default, cancellationToken).ConfigureAwait(false);
                        break;
                    case RemoteRecoveryAction.RolledBack:
                        await ResourceManager.RollbackAsync(xid, default, cancellationToken).ConfigureAwait(false);
                        break;
                    default:
                        if (status.State == "Heuristic")
                        {
                            Logger.RecoveryHeuristic(Options.Name, xid);
                        }

                        break;
                }

                if (action != RemoteRecoveryAction.LeftAlone)
                {
                    var actionName = action.ToString();
                    Logger.Recovered(Options.Name, xid, status.State, actionName);
                    Metrics.Recovered(actionName);
                }

                results.Add(new RemoteRecoveryResult(xid, status.State, action));
            }
            catch (Exception ex) when (ex is HttpRequestException or TwoPCApiException or NpgsqlException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
            {
                Logger.RecoveryBranchFailed(ex, Options.Name, xid);
                results.Add(new RemoteRecoveryResult(xid, "Unreachable", RemoteRecoveryAction.LeftAlone));
            }
        }

        return results;
    }

    private async Task<string> CoordinatorNodeAsync(CancellationToken cancellationToken) =>
        (await Coordinator.GetInfoAsync(cancellationToken).ConfigureAwait(false)).NodeId;

    /// <inheritdoc />
    public ValueTask DisposeAsync()
    {
        _resourceManager?.Dispose();
        Metrics.Dispose();
        return ValueTask.CompletedTask;
    }

    // Voted branches whose phase 2 never comes here (read-only, No, or a coordinator that moved on) are
    // dropped after their deadline: pg_prepared_xacts stays the source of truth for prepared ones.
    private void PruneFinished()
    {
        var cutoff = DateTimeOffset.UtcNow - PhaseTwoGrace - TimeSpan.FromMinutes(1);
        foreach (var branch in _branches.Values)
        {
            if (!branch.IsInFlight && branch.Deadline < cutoff)
            {
                Forget(branch);
            }
        }
    }

    private IResult Answer(string action, Xid xid, string answer, IResult result)
    {
        Logger.Callback(action, xid, answer);
        Metrics.Callback(action, answer);
        return result;
    }

    private static string VoteName(Participants.VoteKind vote) => vote switch
    {
        Participants.VoteKind.Yes => PrepareCallbackResponse.Yes,
        Participants.VoteKind.ReadOnly => PrepareCallbackResponse.ReadOnly,
        _ => PrepareCallbackResponse.No,
    };

    private static string OutcomeName(BranchOutcome outcome) => JsonNamingPolicy.CamelCase.ConvertName(outcome.ToString());
}

/// <summary>What participant-side recovery did with one prepared branch.</summary>
public enum RemoteRecoveryAction
{
    /// <summary>Nothing (not this coordinator's, still working, undecided, heuristic, or the coordinator was unreachable).</summary>
    LeftAlone,

    /// <summary>COMMIT PREPARED: the coordinator logged a commit decision.</summary>
    Committed,

    /// <summary>ROLLBACK PREPARED: the coordinator rolled back, or has no record and the branch is past the safety interval.</summary>
    RolledBack,
}

/// <summary>One prepared branch seen by participant-side recovery.</summary>
/// <param name="Xid">The branch.</param>
/// <param name="CoordinatorState">The coordinator's state of its transaction (or why it was not asked).</param>
/// <param name="Action">What was done.</param>
public sealed record RemoteRecoveryResult(Xid Xid, string CoordinatorState, RemoteRecoveryAction Action);
