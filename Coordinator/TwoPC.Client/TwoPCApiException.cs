using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace TwoPC.Client;

/// <summary>The coordinator answered a request with an error (its RFC 7807 problem details, when it sent them).</summary>
public sealed class TwoPCApiException : Exception
{
    /// <summary>Creates the exception.</summary>
    public TwoPCApiException() { }

    /// <summary>Creates the exception.</summary>
    public TwoPCApiException(string message) : base(message) { }

    /// <summary>Creates the exception.</summary>
    public TwoPCApiException(string message, Exception innerException) : base(message, innerException) { }

    /// <summary>Creates the exception for an answer.</summary>
    public TwoPCApiException(HttpStatusCode statusCode, string? title, string? detail)
        : base($"{(int)statusCode} {title ?? statusCode.ToString()}{(string.IsNullOrEmpty(detail) ? string.Empty : ": " + detail)}")
    {
        StatusCode = statusCode;
        Title = title;
        Detail = detail;
    }

    /// <summary>The HTTP status of the answer.</summary>
    public HttpStatusCode StatusCode { get; }

    /// <summary>The problem's title, if any.</summary>
    public string? Title { get; }

    /// <summary>The problem's detail, if any.</summary>
    public string? Detail { get; }

    /// <summary>Throws for a non-success answer, reading its problem details when present.</summary>
    internal static async Task ThrowIfFailedAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        if (response.IsSuccessStatusCode)
        {
            return;
        }

        string? title = null, detail = null;
        if (response.Content.Headers.ContentType?.MediaType is "application/problem+json" or "application/json")
        {
            try
            {
                var problem = await response.Content.ReadFromJsonAsync<Problem>(TwoPCJson.Options, cancellationToken).ConfigureAwait(false);
                (title, detail) = (problem?.Title, problem?.Detail);
            }
            catch (JsonException)
            {
                // Not problem details after all: the status says enough.
            }
        }

        throw new TwoPCApiException(response.StatusCode, title, detail);
    }

    private sealed record Problem(string? Title, string? Detail);
}

/// <summary>The JSON settings of the coordinator's contract.</summary>
public static class TwoPCJson
{
    /// <summary>camelCase, case-insensitive reading (<see cref="JsonSerializerDefaults.Web"/>).</summary>
    public static JsonSerializerOptions Options { get; } = new(JsonSerializerDefaults.Web);
}
