namespace TwoPC.Protocol;

/// <summary>A logged branch names a resource manager that is not registered (yet) in this process.</summary>
public sealed class ResourceManagerNotRegisteredException : Exception
{
    /// <summary>Creates the exception for the resource manager <paramref name="name"/>.</summary>
    public ResourceManagerNotRegisteredException(string name)
        : base($"Resource manager '{name}' is not registered with the coordinator; register it (under the same name as before the restart) so its branches can be completed.") => Name = name;

    /// <summary>Creates the exception.</summary>
    public ResourceManagerNotRegisteredException() : this("?") { }

    /// <summary>Creates the exception.</summary>
    public ResourceManagerNotRegisteredException(string message, Exception innerException) : base(message, innerException) => Name = "?";

    /// <summary>The missing resource manager's name.</summary>
    public string Name { get; } = "?";
}
