using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Polly;
using Polly.Retry;
using TwoPC.Diagnostics;
using TwoPC.Participants;
using TwoPC.Recovery;
using TwoPC.Transactions;

namespace TwoPC.Protocol;

/// <summary>
/// Phase-2 calls to resources, wrapped in Polly pipelines: commit retries with capped exponential
/// backoff and jitter for as long as the decision stands (only shutdown stops it); rollback is tried
/// a few times and then left to recovery, which presumed abort makes safe. Every attempt has a timeout.
/// </summary>
internal sealed class BranchCalls : IOrphanRollback
{
    private static readonly ResiliencePropertyKey<BranchCall> CallKey = new("twopc.branch-call");

    private readonly ResiliencePipeline<BranchOutcome> _untilDone;
    private readonly ResiliencePipeline<BranchOutcome> _untilDoneGated;
    private readonly ResiliencePipeline<BranchOutcome> _attempt;
    private readonly ResiliencePipeline<BranchOutcome> _bounded;
    private readonly ILogger _logger;

    public BranchCalls(TransactionCoordinatorOptions options, ILogger logger, TimeProvider timeProvider)
    {
        _logger = logger;
        _untilDone = Build(options, int.MaxValue, timeProvider);
        _untilDoneGated = Build(options, int.MaxValue, timeProvider, attemptTimeout: false);
        _attempt = Build(options, 0, timeProvider);
        _bounded = Build(options, options.RollbackAttempts - 1, timeProvider);
    }

    /// <summary>
    /// Commits a prepared branch, retrying until the resource answers or <paramref name="stopping"/> is cancelled;
    /// <paramref name="onFailure"/> is told of every failed attempt (operators see the last one).
    /// </summary>
    public ValueTask<BranchOutcome> CommitAsync(string resourceManager, Func<IResourceManager?> resolve, Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken stopping, Action<Exception>? onFailure = null) =>
        ExecuteAsync(_untilDone, new BranchCall("commit", resourceManager, xid), static async (state, ct) =>
        {
            try
            {
                var rm = state.resolve() ?? throw new ResourceManagerNotRegisteredException(state.name);
                return await rm.CommitAsync(state.xid, state.recoveryData, ct).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                state.onFailure?.Invoke(ex);
                throw;
            }
        }, (resolve, name: resourceManager, xid, recoveryData, onFailure), stopping);

    /// <summary>
    /// Like <see cref="CommitAsync(string, Func{IResourceManager?}, Xid, ReadOnlyMemory{byte}, CancellationToken, Action{Exception}?)"/>,
    /// but every attempt first takes a slot of <paramref name="gate"/> (a bound on the calls in flight to one resource
    /// manager) and gives it back when the attempt ends: the wait for a slot is outside the attempt's timeout, and a
    /// branch waiting out its backoff between attempts holds no slot, so a resource that is down cannot starve the others.
    /// </summary>
    public ValueTask<BranchOutcome> CommitAsync(string resourceManager, Func<IResourceManager?> resolve, Xid xid, ReadOnlyMemory<byte> recoveryData, SemaphoreSlim gate, CancellationToken stopping, Action<Exception>? onFailure = null) =>
        ExecuteAsync(_untilDoneGated, new BranchCall("commit", resourceManager, xid), static async (state, ct) =>
        {
            try
            {
                await state.gate.WaitAsync(ct).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                state.onFailure?.Invoke(ex);
                throw;
            }

            try
            {
                return await state.attempt.ExecuteAsync(static async (s, attemptToken) =>
                {
                    try
                    {
                        var rm = s.resolve() ?? throw new ResourceManagerNotRegisteredException(s.name);
                        return await rm.CommitAsync(s.xid, s.recoveryData, attemptToken).ConfigureAwait(false);
                    }
                    catch (Exception ex)
                    {
                        s.onFailure?.Invoke(ex);
                        throw;
                    }
                }, state, ct).ConfigureAwait(false);
            }
            finally
            {
                state.gate.Release();
            }
        }, (resolve, name: resourceManager, xid, recoveryData, onFailure, gate, attempt: _attempt), stopping);

    /// <summary>An operator's forced commit or rollback of one branch: a few attempts (like a rollback), then throws.</summary>
    public ValueTask<BranchOutcome> ForceAsync(IResourceManager resourceManager, bool commit, Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken) =>
        ExecuteAsync(_bounded, new BranchCall(commit ? "forced-commit" : "forced-rollback", resourceManager.Name, xid), static (state, ct) =>
            state.commit
                ? state.resourceManager.CommitAsync(state.xid, state.recoveryData, ct)
                : state.resourceManager.RollbackAsync(state.xid, state.recoveryData, ct), (resourceManager, commit, xid, recoveryData), cancellationToken);

    /// <summary>Rolls back a prepared branch through its resource manager; a few attempts, then throws.</summary>
    public ValueTask<BranchOutcome> RollbackPreparedAsync(IResourceManager resourceManager, Xid xid, ReadOnlyMemory<byte> recoveryData, CancellationToken cancellationToken) =>
        ExecuteAsync(_bounded, new BranchCall("rollback", resourceManager.Name, xid), static (state, ct) =>
            state.resourceManager.RollbackAsync(state.xid, state.recoveryData, ct), (resourceManager, xid, recoveryData), cancellationToken);

    /// <summary>Rolls back a live branch whatever state it reached; a few attempts, then throws.</summary>
    public ValueTask<BranchOutcome> RollbackLiveAsync(EnlistedBranch branch, CancellationToken cancellationToken) =>
        ExecuteAsync(_bounded, new BranchCall("rollback", branch.ResourceManager.Name, branch.Xid), static (branch, ct) =>
            branch.Branch.RollbackAsync(ct), branch, cancellationToken);

    private async ValueTask<BranchOutcome> ExecuteAsync<TState>(
        ResiliencePipeline<BranchOutcome> pipeline,
        BranchCall call,
        Func<TState, CancellationToken, ValueTask<BranchOutcome>> operation,
        TState state,
        CancellationToken cancellationToken)
    {
        using var activity = TwoPCTelemetry.ActivitySource.StartActivity("twopc.branch." + call.Operation, ActivityKind.Client);
        activity?.SetTag("twopc.xid", call.Xid.ToString());
        activity?.SetTag("twopc.resource_manager", call.ResourceManager);
        var context = ResilienceContextPool.Shared.Get(cancellationToken);
        context.Properties.Set(CallKey, call);
        try
        {
            var outcome = await pipeline.ExecuteAsync(static (ctx, s) => s.operation(s.state, ctx.CancellationToken), context, (operation, state)).ConfigureAwait(false);
            activity?.SetTag("twopc.branch.outcome", outcome.ToString());
            _logger.BranchCompleted(call.Xid, call.ResourceManager, outcome);
            return outcome;
        }
        catch (Exception ex)
        {
            activity?.SetStatus(ActivityStatusCode.Error, ex.Message);
            throw;
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
        }
    }

    private ResiliencePipeline<BranchOutcome> Build(TransactionCoordinatorOptions options, int retries, TimeProvider timeProvider, bool attemptTimeout = true)
    {
        var builder = new ResiliencePipelineBuilder<BranchOutcome> { TimeProvider = timeProvider };
        if (retries > 0)
        {
            builder.AddRetry(new RetryStrategyOptions<BranchOutcome>
            {
                // Every failure is worth another try (the resource answers idempotently) unless we are stopping;
                // a timeout or a cancellation raised inside the resource's client is a failure like any other.
                ShouldHandle = static args => ValueTask.FromResult(args.Outcome.Exception is not null && !args.Context.CancellationToken.IsCancellationRequested),
                MaxRetryAttempts = retries,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = options.RetryBaseDelay,
                MaxDelay = options.RetryMaxDelay,

                // A resource that waited out the whole call for its connection is retried at once (after the base
                // delay): its next call waits for the connection again and goes out the moment it is back.
                DelayGenerator = args => ValueTask.FromResult<TimeSpan?>(args.Outcome.Exception is ResourceUnavailableException ? options.RetryBaseDelay : null),
                OnRetry = args =>
                {
                    if (args.Context.Properties.TryGetValue(CallKey, out var call))
                    {
                        _logger.BranchCallRetry(args.Outcome.Exception, call.Xid, call.ResourceManager, call.Operation, args.AttemptNumber + 1, args.RetryDelay);
                    }

                    return default;
                },
            });
        }

        if (attemptTimeout)
        {
            builder.AddTimeout(options.BranchCallTimeout);
        }

        return builder.Build();
    }

    private sealed record BranchCall(string Operation, string ResourceManager, Xid Xid);
}
