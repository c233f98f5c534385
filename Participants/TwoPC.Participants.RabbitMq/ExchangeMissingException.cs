namespace TwoPC.Participants.RabbitMq;

/// <summary>A staged message's exchange was deleted after the branch prepared.</summary>
internal sealed class ExchangeMissingException(string exchange) : Exception($"exchange '{exchange}' does not exist");
