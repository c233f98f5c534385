using Microsoft.Extensions.Options;
using TwoPC.Coordinator.Server;

await using var app = CoordinatorServer.BuildApp(args);
try
{
    await app.RunAsync();
    return 0;
}
catch (OptionsValidationException)
{
    // A bad setting found while the host started: the host has logged it ("Hosting failed to start", naming the
    // setting). Exit 1 instead of printing it a second time as an unhandled exception and aborting.
    return 1;
}
