using Npgsql;

namespace TwoPC.Participants.RabbitMq;

/// <summary>The application's handler: do the message's effect on <paramref name="connection"/> within <paramref name="transaction"/>.</summary>
public delegate Task InboxHandler(InboxMessage message, NpgsqlConnection connection, NpgsqlTransaction transaction, CancellationToken cancellationToken);
