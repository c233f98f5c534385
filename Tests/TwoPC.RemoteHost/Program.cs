using TwoPC.RemoteHost;

var app = LedgerService.Build(args);
await app.RunAsync();
