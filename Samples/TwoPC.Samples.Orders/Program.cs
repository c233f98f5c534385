using TwoPC.Samples.Orders;

await using var app = await OrdersService.BuildAsync(args);
await app.RunAsync();
