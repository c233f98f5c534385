using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;
using TwoPC.Hosting;

namespace TwoPC.Participants.RabbitMq;

/// <summary>Registers RabbitMQ brokers as publishing resource managers of an embedded coordinator (<c>AddTwoPhaseCommit</c>).</summary>
public static class RabbitMqTwoPhaseCommitBuilderExtensions
{
    /// <summary>Adds the broker at <paramref name="uri"/> (<c>amqp://user:password@host:5672/vhost</c>) as the resource manager <paramref name="name"/>;
    /// see <see cref="AddRabbitMq(TwoPhaseCommitBuilder, string, Func{IServiceProvider, ConnectionFactory}, Action{RabbitMqPublisherOptions}?)"/>.</summary>
    /// <param name="builder">The coordinator's builder.</param>
    /// <param name="name">The unique, stable name (the key in the container and in the log).</param>
    /// <param name="uri">The broker's AMQP URI.</param>
    /// <param name="configure">Publisher settings, applied to the named options <paramref name="name"/>.</param>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("ApiDesign", "RS0026:Do not add multiple public overloads with optional parameters", Justification = "The overloads differ in the type of their required source parameter (connection string, data source, factory), so a call is never ambiguous.")]
    public static TwoPhaseCommitBuilder AddRabbitMq(this TwoPhaseCommitBuilder builder, string name, Uri uri, Action<RabbitMqPublisherOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(uri);
        return builder.AddRabbitMq(name, _ => new ConnectionFactory { Uri = uri }, configure);
    }

    /// <summary>Adds the broker <paramref name="connectionFactory"/> describes (copied, never modified) as the resource manager <paramref name="name"/>;
    /// see <see cref="AddRabbitMq(TwoPhaseCommitBuilder, string, Func{IServiceProvider, ConnectionFactory}, Action{RabbitMqPublisherOptions}?)"/>.</summary>
    /// <param name="builder">The coordinator's builder.</param>
    /// <param name="name">The unique, stable name (the key in the container and in the log).</param>
    /// <param name="connectionFactory">The broker's address and settings.</param>
    /// <param name="configure">Publisher settings, applied to the named options <paramref name="name"/>.</param>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("ApiDesign", "RS0026:Do not add multiple public overloads with optional parameters", Justification = "The overloads differ in the type of their required source parameter (connection string, data source, factory), so a call is never ambiguous.")]
    public static TwoPhaseCommitBuilder AddRabbitMq(this TwoPhaseCommitBuilder builder, string name, ConnectionFactory connectionFactory, Action<RabbitMqPublisherOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(connectionFactory);
        return builder.AddRabbitMq(name, _ => connectionFactory, configure);
    }

    /// <summary>
    /// Adds a broker as the publishing resource manager <paramref name="name"/>, created when the host starts (before
    /// recovery) with the container's <see cref="ILoggerFactory"/> and <see cref="IMeterFactory"/>; it connects in the
    /// background, so a broker that is down does not stop the start. Once started it is the keyed singleton
    /// <see cref="RabbitMqResourceManager"/> (and <see cref="IResourceManager"/>) under <paramref name="name"/>:
    /// <c>[FromKeyedServices("events")] RabbitMqResourceManager events</c>; the host disposes it (closing its connection).
    /// </summary>
    /// <param name="builder">The coordinator's builder.</param>
    /// <param name="name">The unique, stable name (the key in the container and in the log).</param>
    /// <param name="connectionFactory">Gives the broker's address and settings (copied, never modified).</param>
    /// <param name="configure">Publisher settings, applied to the named options <paramref name="name"/>
    /// (which can also be bound from configuration: <c>services.Configure&lt;RabbitMqPublisherOptions&gt;(name, section)</c>).</param>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("ApiDesign", "RS0026:Do not add multiple public overloads with optional parameters", Justification = "The overloads differ in the type of their required source parameter (connection string, data source, factory), so a call is never ambiguous.")]
    public static TwoPhaseCommitBuilder AddRabbitMq(this TwoPhaseCommitBuilder builder, string name, Func<IServiceProvider, ConnectionFactory> connectionFactory, Action<RabbitMqPublisherOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(connectionFactory);
        var options = builder.Services.AddOptions<RabbitMqPublisherOptions>(name);
        if (configure is not null)
        {
            options.Configure(configure);
        }

        return builder.AddResourceManager(name, (sp, ct) => RabbitMqResourceManager.CreateAsync(
            name,
            connectionFactory(sp),
            sp.GetRequiredService<IOptionsMonitor<RabbitMqPublisherOptions>>().Get(name),
            sp.GetService<ILoggerFactory>(),
            sp.GetService<IMeterFactory>(),
            ct));
    }
}
