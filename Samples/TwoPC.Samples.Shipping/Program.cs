using TwoPC.Samples.Shipping;

await using var app = await ShippingService.BuildAsync(args);
await app.RunAsync();
