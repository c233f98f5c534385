using System.Diagnostics.CodeAnalysis;

namespace TwoPC.Transactions;

/// <summary>
/// The identity of one coordinator node. It is part of every global transaction id so that
/// recovery only ever presumes-abort branches that this node created, and it must be unique among
/// the coordinators that share resource managers (like Narayana's node identifier).
/// </summary>
/// <remarks>1 to <see cref="MaxLength"/> characters from <c>a-z</c>, <c>0-9</c> and <c>-</c>, not starting or ending with <c>-</c>.</remarks>
public readonly record struct NodeId
{
    /// <summary>The longest node id, chosen so a full XID string stays far below PostgreSQL's 200-byte gid limit.</summary>
    public const int MaxLength = 24;

    private readonly string? _value;

    private NodeId(string value) => _value = value;

    /// <summary>The node id text.</summary>
    public string Value => _value ?? throw new InvalidOperationException("default(NodeId) is not a node id.");

    /// <summary>Validates <paramref name="value"/> and returns it as a node id.</summary>
    /// <exception cref="TransactionIdFormatException">The value is not a valid node id.</exception>
    public static NodeId Parse(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (!TryValidate(value, out var error))
        {
            throw new TransactionIdFormatException($"Invalid node id {TransactionIdFormatException.Sanitize(value)}: {error}");
        }

        return new NodeId(value);
    }

    /// <summary>Tries to parse a node id without throwing.</summary>
    public static bool TryParse([NotNullWhen(true)] string? value, out NodeId nodeId)
    {
        if (value is not null && TryValidate(value, out _))
        {
            nodeId = new NodeId(value);
            return true;
        }

        nodeId = default;
        return false;
    }

    internal static bool TryValidate(ReadOnlySpan<char> value, [NotNullWhen(false)] out string? error)
    {
        if (value.IsEmpty)
        {
            error = "it is empty";
            return false;
        }

        if (value.Length > MaxLength)
        {
            error = $"it is longer than {MaxLength} characters";
            return false;
        }

        foreach (var c in value)
        {
            if (c is not ((>= 'a' and <= 'z') or (>= '0' and <= '9') or '-'))
            {
                error = "only a-z, 0-9 and '-' are allowed";
                return false;
            }
        }

        if (value[0] == '-' || value[^1] == '-')
        {
            error = "it must not start or end with '-'";
            return false;
        }

        error = null;
        return true;
    }

    /// <inheritdoc />
    public override string ToString() => _value ?? string.Empty;
}
