using Microsoft.Extensions.Logging;
using Polly;
using Polly.Retry;
using RabbitMQ.Client;

namespace TwoPC.Participants.RabbitMq;

/// <summary>
/// One AMQP connection kept open in the background: connected lazily (a broker that is down when the
/// resource manager or consumer is built is not an error), and reconnected after every loss with capped
/// backoff. Callers wait for it with <see cref="GetAsync"/>, so work that needs the broker resumes as soon
/// as the connection is back rather than on its own retry timer.
/// </summary>
/// <remarks>
/// The caller's <see cref="ConnectionFactory"/> is never modified: its settings are copied into a private
/// factory with the client library's own recovery switched off, because this class does the recovering
/// (a recovered connection then always runs <c>onConnected</c> again, e.g. to re-declare a queue).
/// </remarks>
internal sealed class BrokerConnection : IAsyncDisposable
{
    private readonly ConnectionFactory _factory;
    private readonly string _clientName;
    private readonly Func<IConnection, CancellationToken, Task> _onConnected;
    private readonly ILogger _logger;
    private readonly ResiliencePipeline _connect;
    private readonly CancellationTokenSource _disposing = new();
    private readonly Lock _gate = new();
    private TaskCompletionSource<IConnection> _open = NewOpen();
    private Task _loop = Task.CompletedTask;
    private int _disposed;

    private BrokerConnection(ConnectionFactory factory, string clientName, TimeSpan maxReconnectDelay, Func<IConnection, CancellationToken, Task> onConnected, ILogger logger)
    {
        _factory = Copy(factory);
        _clientName = clientName;
        _onConnected = onConnected;
        _logger = logger;
        _connect = new ResiliencePipelineBuilder().AddRetry(new RetryStrategyOptions
        {
            ShouldHandle = args => ValueTask.FromResult(args.Outcome.Exception is not null && !_disposing.IsCancellationRequested),
            MaxRetryAttempts = int.MaxValue,
            BackoffType = DelayBackoffType.Exponential,
            UseJitter = true,
            Delay = TimeSpan.FromMilliseconds(Math.Min(100, maxReconnectDelay.TotalMilliseconds)),
            MaxDelay = maxReconnectDelay,
            OnRetry = args =>
            {
                _logger.ConnectFailed(args.Outcome.Exception!, _clientName, _factory.Endpoint, args.AttemptNumber + 1, args.RetryDelay);
                return default;
            },
        }).Build();
    }

    /// <summary>The open connection now, or <see langword="null"/> while (re)connecting.</summary>
    public IConnection? Current
    {
        get
        {
            var open = Volatile.Read(ref _open).Task;
            return open.IsCompletedSuccessfully && open.Result.IsOpen ? open.Result : null;
        }
    }

    /// <summary>Starts connecting in the background and returns at once.</summary>
    /// <param name="factory">The caller's settings (copied, not modified).</param>
    /// <param name="clientName">The connection's name as the broker shows it.</param>
    /// <param name="maxReconnectDelay">The longest pause between two connection attempts.</param>
    /// <param name="onConnected">Runs on every new connection before anyone gets it (declarations); a failure drops that connection and retries.</param>
    /// <param name="logger">Where connection losses and failed attempts are reported.</param>
    public static BrokerConnection Start(ConnectionFactory factory, string clientName, TimeSpan maxReconnectDelay, Func<IConnection, CancellationToken, Task> onConnected, ILogger logger)
    {
        var connection = new BrokerConnection(factory, clientName, maxReconnectDelay, onConnected, logger);
        connection._loop = Task.Run(connection.KeepConnectedAsync);
        return connection;
    }

    /// <summary>The open connection; waits (until <paramref name="cancellationToken"/>) while the broker is unreachable.</summary>
    public async Task<IConnection> GetAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var open = Volatile.Read(ref _open);
            var connection = await open.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
            if (connection.IsOpen)
            {
                return connection;
            }

            // Lost but not yet noticed by the loop: wait for the next one.
            await WhenReplacedAsync(open, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task WhenReplacedAsync(TaskCompletionSource<IConnection> stale, CancellationToken cancellationToken)
    {
        while (ReferenceEquals(Volatile.Read(ref _open), stale))
        {
            await Task.Delay(20, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task KeepConnectedAsync()
    {
        var stopping = _disposing.Token;
        while (!stopping.IsCancellationRequested)
        {
            IConnection connection;
            try
            {
                connection = await _connect.ExecuteAsync(ConnectOnceAsync, stopping).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                return;
            }

            var lost = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            connection.ConnectionShutdownAsync += (_, _) =>
            {
                lost.TrySetResult();
                return Task.CompletedTask;
            };
            if (!connection.IsOpen)
            {
                lost.TrySetResult();
            }

            _logger.Connected(_clientName, connection.Endpoint);
            Volatile.Read(ref _open).TrySetResult(connection);
            try
            {
                await lost.Task.WaitAsync(stopping).ConfigureAwait(false);
                _logger.ConnectionLost(_clientName, connection.CloseReason?.ToString() ?? "closed");
            }
            catch (OperationCanceledException)
            {
                // Disposing: the connection is closed below.
            }

            lock (_gate)
            {
                _open = NewOpen();
            }

            try
            {
                await connection.DisposeAsync().ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                // Already broken; nothing to release.
            }
        }
    }

    private async ValueTask<IConnection> ConnectOnceAsync(CancellationToken cancellationToken)
    {
        var connection = await _factory.CreateConnectionAsync(_clientName, cancellationToken).ConfigureAwait(false);
        try
        {
            await _onConnected(connection, cancellationToken).ConfigureAwait(false);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Stops reconnecting and closes the connection.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _disposing.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(false);
        lock (_gate)
        {
            _open.TrySetCanceled();
        }

        _disposing.Dispose();
    }

    private static TaskCompletionSource<IConnection> NewOpen() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>The caller's settings in a factory of our own (so theirs is never changed), with the client's own recovery off.</summary>
    internal static ConnectionFactory Copy(ConnectionFactory source) => new()
    {
        HostName = source.HostName,
        Port = source.Port,
        VirtualHost = source.VirtualHost,
        UserName = source.UserName,
        Password = source.Password,
        CredentialsProvider = source.CredentialsProvider,
        Ssl = source.Ssl,
        AmqpUriSslProtocols = source.AmqpUriSslProtocols,
        AuthMechanisms = source.AuthMechanisms,
        ClientProperties = new Dictionary<string, object?>(source.ClientProperties),
        ClientProvidedName = source.ClientProvidedName,
        ContinuationTimeout = source.ContinuationTimeout,
        HandshakeContinuationTimeout = source.HandshakeContinuationTimeout,
        RequestedConnectionTimeout = source.RequestedConnectionTimeout,
        RequestedHeartbeat = source.RequestedHeartbeat,
        RequestedChannelMax = source.RequestedChannelMax,
        RequestedFrameMax = source.RequestedFrameMax,
        MaxInboundMessageBodySize = source.MaxInboundMessageBodySize,
        SocketReadTimeout = source.SocketReadTimeout,
        SocketWriteTimeout = source.SocketWriteTimeout,
        EndpointResolverFactory = source.EndpointResolverFactory,
        ConsumerDispatchConcurrency = source.ConsumerDispatchConcurrency,
        NetworkRecoveryInterval = source.NetworkRecoveryInterval,
        AutomaticRecoveryEnabled = false,
        TopologyRecoveryEnabled = false,
    };
}
