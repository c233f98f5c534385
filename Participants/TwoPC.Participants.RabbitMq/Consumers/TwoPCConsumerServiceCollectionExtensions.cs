using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;

namespace TwoPC.Participants.RabbitMq;

/// <summary>Registers typed exactly-once consumers in a Generic Host.</summary>
public static class TwoPCConsumerServiceCollectionExtensions
{
    /// <summary>
    /// Consumes <paramref name="queue"/> with exactly-once effects: each message's body is deserialized as
    /// <typeparamref name="TMessage"/> (System.Text.Json) and handled by a <typeparamref name="THandler"/> resolved
    /// from a new DI scope, inside the inbox transaction (see <see cref="InboxConsumer"/>). The consumer starts with
    /// the host on a connection of its own that reconnects, and stops with it, letting handlers in flight finish.
    /// </summary>
    /// <remarks>
    /// A failing handler is retried in process (<see cref="TwoPCConsumerOptions.RetryAttempts"/>), then the delivery
    /// is requeued (after <see cref="InboxConsumerOptions.RedeliveryDelay"/>) up to
    /// <see cref="InboxConsumerOptions.DeliveryLimit"/>, then dead-lettered with the last error. A body that does not
    /// deserialize is dead-lettered at once: it will never succeed. <typeparamref name="THandler"/> is registered as
    /// scoped unless it is registered already.
    /// </remarks>
    public static IServiceCollection AddTwoPCConsumer<TMessage, THandler>(this IServiceCollection services, string queue, Action<TwoPCConsumerOptions>? configure = null)
        where THandler : class, IMessageHandler<TMessage>
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentException.ThrowIfNullOrEmpty(queue);
        var options = new TwoPCConsumerOptions { Queue = queue };
        configure?.Invoke(options);
        if (options.RetryAttempts < 0 || options.RetryDelay < TimeSpan.Zero)
        {
            throw new ArgumentException("TwoPCConsumerOptions.RetryAttempts and RetryDelay must not be negative.", nameof(configure));
        }

        services.TryAddScoped<THandler>();
        services.AddSingleton<IHostedService>(sp => new TypedConsumer<TMessage, THandler>(sp, options));
        return services;
    }
}
