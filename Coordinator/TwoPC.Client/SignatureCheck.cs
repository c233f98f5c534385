namespace TwoPC.Client;

/// <summary>The verdict on a signed call.</summary>
public enum SignatureCheck
{
    /// <summary>Signed by the key, within the clock-skew window.</summary>
    Valid,

    /// <summary>The timestamp or signature header is absent.</summary>
    Missing,

    /// <summary>A header is not in the scheme's format.</summary>
    Malformed,

    /// <summary>The timestamp is outside the clock-skew window (a stale or replayed call, or clocks apart).</summary>
    Expired,

    /// <summary>The signature is not the key's for this method, path, timestamp and body.</summary>
    Invalid,
}
