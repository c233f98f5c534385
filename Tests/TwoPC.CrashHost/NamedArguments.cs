namespace TwoPC.CrashHost;

/// <summary>"--name value" arguments of the PostgreSQL and RabbitMQ scenarios.</summary>
internal static class NamedArguments
{
    public static string Value(string[] args, string name) =>
        Optional(args, name) ?? throw new FormatException($"{args[0]} needs {name}");

    public static string? Optional(string[] args, string name)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }
}
