using Microsoft.Extensions.Hosting;

namespace TwoPC.Participants.RabbitMq;

/// <summary>
/// Runs an <see cref="InboxConsumer"/> as a hosted service (Generic Host): it starts consuming when the
/// host starts and stops — letting in-flight handlers finish — when the host stops.
/// </summary>
/// <param name="start">Starts the consumer (typically one of the <c>InboxConsumer.StartAsync</c> overloads with the application's handler).</param>
public sealed class InboxConsumerService(Func<CancellationToken, Task<InboxConsumer>> start) : IHostedService, IAsyncDisposable
{
    private InboxConsumer? _consumer;

    /// <inheritdoc />
    public async Task StartAsync(CancellationToken cancellationToken) => _consumer = await start(cancellationToken).ConfigureAwait(false);

    /// <inheritdoc />
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (Interlocked.Exchange(ref _consumer, null) is { } consumer)
        {
            await consumer.DisposeAsync().AsTask().WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync() => await StopAsync(CancellationToken.None).ConfigureAwait(false);
}
