using System.Net;
using Microsoft.Extensions.Primitives;
using TwoPC.Protocol;
using TwoPC.Transactions;

namespace TwoPC.Coordinator.Server.Cluster;

/// <summary>
/// Several coordinator nodes on a shared log behind one address: a transaction being worked on lives in the memory of
/// the node that began it, so a request about it (<c>/transactions/{id}/…</c>: register a branch, stage a message,
/// commit, roll back, read its status) that reaches another node is forwarded, as it is, to the node its id names
/// (<c>Coordinator:Cluster:Nodes:{nodeId}:Url</c>). The owner authenticates it exactly as if it had been sent there:
/// signatures cover the method, path, timestamp and body, never the host. A status read whose owner is unreachable is
/// answered here from the shared log; anything else gets 503 — a dead node's transactions are finished by the node
/// that takes it over once its lease expires, not by a request to another node.
/// </summary>
internal sealed class ClusterForwarding(RequestDelegate next, ClusterNodes nodes, TransactionRegistry registry, IHttpClientFactory clients, ILogger<ClusterForwarding> logger)
{
    /// <summary>Set on a forwarded request: it is never forwarded again (no loops between misconfigured nodes).</summary>
    public const string ForwardedHeader = "TwoPC-Forwarded-By";

    /// <summary>The named <see cref="HttpClient"/> for node-to-node forwarding.</summary>
    public const string ClientName = "twopc-cluster";

    private static readonly HashSet<string> HopByHop = new(StringComparer.OrdinalIgnoreCase)
    {
        "Connection", "Keep-Alive", "Transfer-Encoding", "Upgrade", "Proxy-Connection", "TE", "Trailer", "Host", "Content-Length",
    };

    public async Task InvokeAsync(HttpContext context)
    {
        if (!nodes.Any || !TryGetForeignOwner(context.Request, out var owner, out var url))
        {
            await next(context);
            return;
        }

        try
        {
            await ForwardAsync(context, owner, url);
        }
        catch (HttpRequestException ex) when (!context.Response.HasStarted)
        {
            if (HttpMethods.IsGet(context.Request.Method))
            {
                // The owner is down: the shared log still knows whether a decision was logged.
                logger.OwnerUnreachableAnsweredHere(owner, context.Request.Path, ex.Message);
                await next(context);
                return;
            }

            logger.OwnerUnreachable(owner, context.Request.Method, context.Request.Path, ex.Message);
            context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
            await Results.Problem(
                statusCode: StatusCodes.Status503ServiceUnavailable,
                title: "The transaction's coordinator node is unreachable",
                detail: $"The transaction belongs to coordinator node '{owner}', which did not answer ({ex.Message}). If it is down, a live node takes its transactions over when its lease expires: ask for the transaction's status later.").ExecuteAsync(context);
        }
    }

    private bool TryGetForeignOwner(HttpRequest request, out string owner, out Uri url)
    {
        owner = string.Empty;
        url = null!;
        if (request.Headers.ContainsKey(ForwardedHeader) || !request.Path.StartsWithSegments("/transactions", out var rest) || !rest.HasValue)
        {
            return false;
        }

        var segment = rest.Value.AsSpan(1);
        var slash = segment.IndexOf('/');
        var text = slash < 0 ? segment : segment[..slash];
        if (!GlobalTransactionId.TryParse(Uri.UnescapeDataString(text.ToString()), out var id) || id.Node == registry.Coordinator.NodeId)
        {
            return false; // not a transaction id (the endpoint reports that), or ours
        }

        owner = id.Node.Value;
        return nodes.TryGetUrl(id.Node, out url);
    }

    private async Task ForwardAsync(HttpContext context, string owner, Uri baseUrl)
    {
        var request = context.Request;
        var target = new Uri(baseUrl, request.Path.Value!.TrimStart('/') + request.QueryString.Value);
        using var forward = new HttpRequestMessage(new HttpMethod(request.Method), target);
        if (request.ContentLength is > 0 || request.Headers.ContainsKey("Transfer-Encoding"))
        {
            forward.Content = new StreamContent(request.Body);
        }

        foreach (var (name, values) in request.Headers)
        {
            if (HopByHop.Contains(name))
            {
                continue;
            }

            if (!forward.Headers.TryAddWithoutValidation(name, (IEnumerable<string?>)values))
            {
                forward.Content?.Headers.TryAddWithoutValidation(name, (IEnumerable<string?>)values);
            }
        }

        forward.Headers.TryAddWithoutValidation(ForwardedHeader, registry.Coordinator.NodeId.Value);
        using var response = await clients.CreateClient(ClientName).SendAsync(forward, HttpCompletionOption.ResponseHeadersRead, context.RequestAborted);
        logger.Forwarded(context.Request.Method, context.Request.Path, owner, (int)response.StatusCode);
        context.Response.StatusCode = (int)response.StatusCode;
        foreach (var (name, values) in response.Headers.Concat(response.Content.Headers))
        {
            if (!HopByHop.Contains(name))
            {
                context.Response.Headers[name] = new StringValues([.. values]);
            }
        }

        await response.Content.CopyToAsync(context.Response.Body, context.RequestAborted);
    }
}

/// <summary>The other coordinator nodes of a cluster and their URLs (<c>Coordinator:Cluster:Nodes:{nodeId}:Url</c>).</summary>
internal sealed class ClusterNodes
{
    private readonly Dictionary<NodeId, Uri> _urls = [];

    public bool Any => _urls.Count > 0;

    public static ClusterNodes FromConfiguration(IConfiguration server)
    {
        var nodes = new ClusterNodes();
        foreach (var node in server.GetSection("Cluster:Nodes").GetChildren())
        {
            if (!NodeId.TryParse(node.Key, out var id))
            {
                throw new InvalidOperationException($"Coordinator:Cluster:Nodes:{node.Key}: '{node.Key}' is not a node id (1-24 of a-z, 0-9 and '-').");
            }

            if (!Uri.TryCreate(node["Url"], UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https"))
            {
                throw new InvalidOperationException($"Coordinator:Cluster:Nodes:{node.Key}:Url must be the node's absolute http(s) base URL (got '{node["Url"]}').");
            }

            nodes._urls[id] = url.AbsoluteUri.EndsWith('/') ? url : new Uri(url.AbsoluteUri + "/");
        }

        return nodes;
    }

    public bool TryGetUrl(NodeId node, out Uri url) => _urls.TryGetValue(node, out url!);
}

internal static partial class ClusterLog
{
    [LoggerMessage(EventId = 6500, Level = LogLevel.Debug, Message = "Forwarded {Method} {Path} to coordinator node {Owner}: {Status}")]
    public static partial void Forwarded(this ILogger logger, string method, PathString path, string owner, int status);

    [LoggerMessage(EventId = 6501, Level = LogLevel.Warning, Message = "Coordinator node {Owner} is unreachable ({Error}): {Method} {Path} refused with 503 (its transactions are taken over when its lease expires)")]
    public static partial void OwnerUnreachable(this ILogger logger, string owner, string method, PathString path, string error);

    [LoggerMessage(EventId = 6502, Level = LogLevel.Information, Message = "Coordinator node {Owner} is unreachable ({Error}): status of {Path} answered here from the shared log")]
    public static partial void OwnerUnreachableAnsweredHere(this ILogger logger, string owner, PathString path, string error);
}
