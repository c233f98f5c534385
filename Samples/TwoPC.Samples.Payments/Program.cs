using TwoPC.Samples.Payments;

await using var app = await PaymentsService.BuildAsync(args);
await app.RunAsync();
