using System.Net;
using System.Net.Sockets;

namespace TwoPC.Samples.Demo;

/// <summary>
/// The failover scenario's stand-in for a load balancer (a Kubernetes Service, an L4 balancer): it listens on the
/// coordinator's well-known port and pipes each connection to the first backend that accepts one, in order — or, with
/// <see cref="RoundRobin"/>, starting from the next backend each time. When a node dies, its connections break and new
/// ones go to a live node.
/// </summary>
internal sealed class TcpForwarder : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly IReadOnlyList<int> _backends;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;
    private int _next;

    public TcpForwarder(int port, IReadOnlyList<int> backends)
    {
        _backends = backends;
        _listener = new TcpListener(IPAddress.Loopback, port);
        _listener.Start();
        _accepting = AcceptAsync(_stop.Token);
    }

    /// <summary>Spread connections over the backends (each new connection starts at the next one) instead of preferring the first.</summary>
    public bool RoundRobin { get; set; }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        try
        {
            await _accepting;
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }

        _stop.Dispose();
    }

    private async Task AcceptAsync(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            var client = await _listener.AcceptTcpClientAsync(stop);
            _ = Task.Run(() => ForwardAsync(client, stop), CancellationToken.None);
        }
    }

    private async Task ForwardAsync(TcpClient client, CancellationToken stop)
    {
        using (client)
        {
            var first = RoundRobin ? (int)((uint)Interlocked.Increment(ref _next) % (uint)_backends.Count) : 0;
            foreach (var port in _backends.Skip(first).Concat(_backends.Take(first)))
            {
                using var backend = new TcpClient();
                try
                {
                    await backend.ConnectAsync(IPAddress.Loopback, port, stop);
                }
                catch (SocketException)
                {
                    continue; // that node is down: try the next
                }

                try
                {
                    using var linked = CancellationTokenSource.CreateLinkedTokenSource(stop);
                    var upstream = client.GetStream().CopyToAsync(backend.GetStream(), linked.Token);
                    var downstream = backend.GetStream().CopyToAsync(client.GetStream(), linked.Token);
                    await Task.WhenAny(upstream, downstream);
                    await linked.CancelAsync(); // either side closed or broke: close both
                }
                catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
                {
                }

                return;
            }
        }
    }
}
