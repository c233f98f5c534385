using TwoPC.TestServers;

namespace TwoPC.Samples.Readme;

/// <summary>The TwoPC.TestServers package README (its xunit example is compiled and run in Tests/TwoPC.Samples.Readme.Tests).</summary>
public static class TestServersSnippets
{
    /// <summary>Testing/TwoPC.TestServers/README.md: the servers on their own.</summary>
    public static async Task<string> StartAsync()
    {
        #region servers
        await using var postgres = await PostgresServer.StartAsync();   // max_prepared_transactions set for TwoPC
        await using var rabbit = await RabbitMqServer.StartAsync();
        var orders = await postgres.CreateDatabaseAsync();              // a connection string to a new database
        var amqpUri = rabbit.AmqpUri;
        #endregion
        return orders + amqpUri;
    }
}
