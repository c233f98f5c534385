using System.Net;
using System.Net.Sockets;

namespace TwoPC.TestServers.Internal;

/// <summary>Free TCP ports on 127.0.0.1, chosen by the kernel.</summary>
public static class FreePort
{
    /// <summary>
    /// A port that was free on 127.0.0.1 a moment ago. Another process may take it before the server
    /// binds it, so callers retry with a new port when the server reports the address in use.
    /// </summary>
    public static int OnLoopback()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }
}
