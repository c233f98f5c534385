using TwoPC.Coordinator.Server;

await using var app = CoordinatorServer.BuildApp(args);
await app.RunAsync();
