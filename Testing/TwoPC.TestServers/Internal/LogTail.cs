namespace TwoPC.TestServers.Internal;

/// <summary>Reads the last lines of a (possibly still growing) server log for error messages.</summary>
internal static class LogTail
{
    public static IReadOnlyList<string> LastLines(string text, int count)
    {
        var lines = text.Split('\n', StringSplitOptions.None)
            .Select(line => line.TrimEnd('\r'))
            .ToList();
        while (lines.Count > 0 && lines[^1].Length == 0)
        {
            lines.RemoveAt(lines.Count - 1);
        }

        return lines.Count <= count ? lines : lines.GetRange(lines.Count - count, count);
    }

    /// <summary>What <paramref name="path"/> holds from byte <paramref name="offset"/> on (empty when it cannot be read): the output of one start attempt.</summary>
    public static string TextSince(string path, long offset)
    {
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            stream.Seek(Math.Min(offset, stream.Length), SeekOrigin.Begin);
            using var reader = new StreamReader(stream);
            return reader.ReadToEnd();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return string.Empty;
        }
    }

    /// <summary>The last <paramref name="count"/> lines of <paramref name="path"/>, formatted for an exception message.</summary>
    public static string Format(string path, int count = 40)
    {
        string text;
        try
        {
            if (!File.Exists(path))
            {
                return $"--- server log {path}: (does not exist) ---";
            }

            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            const long MaxBytes = 64 * 1024;
            if (stream.Length > MaxBytes)
            {
                stream.Seek(-MaxBytes, SeekOrigin.End);
            }

            using var reader = new StreamReader(stream);
            text = reader.ReadToEnd();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return $"--- server log {path}: (unreadable: {ex.Message}) ---";
        }

        var lines = LastLines(text, count);
        if (lines.Count == 0)
        {
            return $"--- server log {path}: (empty) ---";
        }

        return $"--- last {lines.Count} lines of server log {path} ---{Environment.NewLine}"
            + string.Join(Environment.NewLine, lines)
            + $"{Environment.NewLine}--- end of server log ---";
    }
}
