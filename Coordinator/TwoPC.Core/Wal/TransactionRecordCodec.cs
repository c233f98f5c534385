using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using System.Text.Unicode;
using TwoPC.Durability;
using TwoPC.Participants;
using TwoPC.Transactions;

namespace TwoPC.Wal;

/// <summary>The record types of the transaction log (see the format at the top of <c>WriteAheadLog.cs</c>).</summary>
internal enum TransactionRecordType : byte
{
    Epoch = 1,
    CommitDecision = 2,
    Heuristic = 3,
    End = 4,
}

/// <summary>
/// Encodes transaction records into WAL payloads without allocating, and decodes them strictly:
/// anything that does not decode to exactly the bytes' length throws <see cref="InvalidDataException"/>
/// or <see cref="FormatException"/>, which recovery reports as corruption.
/// </summary>
internal static class TransactionRecordCodec
{
    // Cached so an append never allocates a delegate.
    public static readonly WalPayloadEncoder<ulong> EpochEncoder = EncodeEpoch;
    public static readonly WalPayloadEncoder<CommitDecision> CommitDecisionEncoder = EncodeCommitDecision;
    public static readonly WalPayloadEncoder<HeuristicRecord> HeuristicEncoder = EncodeHeuristic;
    public static readonly WalPayloadEncoder<GlobalTransactionId> EndEncoder = EncodeEnd;

    public const int EpochLength = sizeof(ulong);

    public const int MaxEndLength = sizeof(uint) + GlobalTransactionId.MaxLength;

    private const int MaxIdLength = sizeof(uint) + GlobalTransactionId.MaxLength;

    private const int MaxXidLength = sizeof(uint) + Xid.MaxLength;

    // A heuristic branch's outcome byte: the outcome code (0 = unknown, else 1 + BranchOutcome) in the low bits;
    // this bit says the branch's recovery data (length-prefixed) follows. Outcome codes never reach it, so records
    // written before recovery data was kept decode unchanged.
    private const byte HasRecoveryData = 0x80;

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public static int MaxCommitDecisionLength(CommitDecision decision)
    {
        long length = MaxIdLength + sizeof(long) + sizeof(uint);
        var branches = decision.Branches;
        for (var i = 0; i < branches.Count; i++) // not foreach: an interface enumerator would allocate per append
        {
            length += MaxStringLength(branches[i].ResourceManager) + MaxXidLength + sizeof(uint) + branches[i].RecoveryData.Length;
        }

        return CheckLength(length);
    }

    public static int MaxHeuristicLength(HeuristicRecord record)
    {
        long length = MaxIdLength + sizeof(long) + 1 + MaxStringLength(record.Reason) + sizeof(uint);
        var branches = record.Branches;
        for (var i = 0; i < branches.Count; i++)
        {
            length += MaxStringLength(branches[i].ResourceManager) + MaxXidLength + 1 + sizeof(uint) + branches[i].RecoveryData.Length;
        }

        return CheckLength(length);
    }

    private static int EncodeEpoch(ulong epoch, Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(destination, epoch);
        return EpochLength;
    }

    private static int EncodeCommitDecision(CommitDecision decision, Span<byte> destination)
    {
        var position = WriteId(destination, decision.TransactionId);
        BinaryPrimitives.WriteInt64LittleEndian(destination[position..], decision.DecidedAt.ToUnixTimeMilliseconds());
        position += sizeof(long);
        var branches = decision.Branches;
        BinaryPrimitives.WriteUInt32LittleEndian(destination[position..], (uint)branches.Count);
        position += sizeof(uint);
        for (var i = 0; i < branches.Count; i++)
        {
            var branch = branches[i];
            position += WriteString(destination[position..], branch.ResourceManager);
            position += WriteXid(destination[position..], branch.Xid);
            var data = branch.RecoveryData.Span;
            BinaryPrimitives.WriteUInt32LittleEndian(destination[position..], (uint)data.Length);
            data.CopyTo(destination[(position + sizeof(uint))..]);
            position += sizeof(uint) + data.Length;
        }

        return position;
    }

    private static int EncodeHeuristic(HeuristicRecord record, Span<byte> destination)
    {
        var position = WriteId(destination, record.TransactionId);
        BinaryPrimitives.WriteInt64LittleEndian(destination[position..], record.RecordedAt.ToUnixTimeMilliseconds());
        position += sizeof(long);
        destination[position++] = (byte)record.Kind;
        position += WriteString(destination[position..], record.Reason);
        var branches = record.Branches;
        BinaryPrimitives.WriteUInt32LittleEndian(destination[position..], (uint)branches.Count);
        position += sizeof(uint);
        for (var i = 0; i < branches.Count; i++)
        {
            var branch = branches[i];
            position += WriteString(destination[position..], branch.ResourceManager);
            position += WriteXid(destination[position..], branch.Xid);
            var code = branch.Outcome is { } outcome ? (byte)(1 + (int)outcome) : (byte)0;
            var data = branch.RecoveryData.Span;
            if (data.IsEmpty)
            {
                destination[position++] = code;
                continue;
            }

            destination[position++] = (byte)(code | HasRecoveryData);
            BinaryPrimitives.WriteUInt32LittleEndian(destination[position..], (uint)data.Length);
            data.CopyTo(destination[(position + sizeof(uint))..]);
            position += sizeof(uint) + data.Length;
        }

        return position;
    }

    private static int EncodeEnd(GlobalTransactionId transactionId, Span<byte> destination) => WriteId(destination, transactionId);

    public static ulong DecodeEpoch(ReadOnlySpan<byte> payload)
    {
        var reader = new PayloadReader(payload);
        var epoch = reader.ReadUInt64();
        reader.EnsureEnd();
        return epoch;
    }

    public static CommitDecision DecodeCommitDecision(ReadOnlySpan<byte> payload)
    {
        var reader = new PayloadReader(payload);
        var id = GlobalTransactionId.Parse(reader.ReadString());
        var decidedAt = DateTimeOffset.FromUnixTimeMilliseconds(reader.ReadInt64());
        var count = reader.ReadCount(minimumItemLength: 12);
        var branches = new LoggedBranch[count];
        for (var i = 0; i < count; i++)
        {
            var resourceManager = reader.ReadString();
            var xid = Xid.Parse(reader.ReadString());
            branches[i] = new LoggedBranch(resourceManager, xid, reader.ReadBytes());
        }

        reader.EnsureEnd();
        return new CommitDecision(id, decidedAt, branches);
    }

    public static HeuristicRecord DecodeHeuristic(ReadOnlySpan<byte> payload)
    {
        var reader = new PayloadReader(payload);
        var id = GlobalTransactionId.Parse(reader.ReadString());
        var recordedAt = DateTimeOffset.FromUnixTimeMilliseconds(reader.ReadInt64());
        var kind = (OutcomeKind)reader.ReadByte();
        if (!Enum.IsDefined(kind))
        {
            throw new InvalidDataException($"unknown outcome kind {(int)kind}");
        }

        var reason = reader.ReadString();
        var count = reader.ReadCount(minimumItemLength: 9);
        var branches = new HeuristicBranch[count];
        for (var i = 0; i < count; i++)
        {
            var resourceManager = reader.ReadString();
            var xid = Xid.Parse(reader.ReadString());
            var flags = reader.ReadByte();
            var code = flags & ~HasRecoveryData;
            BranchOutcome? outcome = code == 0 ? null : (BranchOutcome)(code - 1);
            if (outcome is { } value && !Enum.IsDefined(value))
            {
                throw new InvalidDataException($"unknown branch outcome code {code}");
            }

            // Written only when there is some: a record without it (or from before it was kept) decodes as empty.
            ReadOnlyMemory<byte> recoveryData = default;
            if ((flags & HasRecoveryData) != 0)
            {
                recoveryData = reader.ReadBytes();
                if (recoveryData.IsEmpty)
                {
                    throw new InvalidDataException("a heuristic branch flagged with recovery data has none");
                }
            }

            branches[i] = new HeuristicBranch(resourceManager, xid, outcome, recoveryData);
        }

        reader.EnsureEnd();
        return new HeuristicRecord(id, recordedAt, kind, reason, branches);
    }

    public static GlobalTransactionId DecodeEnd(ReadOnlySpan<byte> payload)
    {
        var reader = new PayloadReader(payload);
        var id = GlobalTransactionId.Parse(reader.ReadString());
        reader.EnsureEnd();
        return id;
    }

    private static int MaxStringLength(string value) => sizeof(uint) + Encoding.UTF8.GetMaxByteCount(value.Length);

    private static int CheckLength(long length) =>
        length <= WalFormat.MaxPayloadLength
            ? (int)length
            : throw new ArgumentException($"The record would take up to {length} bytes; a log record is limited to {WalFormat.MaxPayloadLength}.");

    private static int WriteString(Span<byte> destination, string value)
    {
        var length = Encoding.UTF8.GetBytes(value, destination[sizeof(uint)..]);
        BinaryPrimitives.WriteUInt32LittleEndian(destination, (uint)length);
        return sizeof(uint) + length;
    }

    // The canonical text forms, formatted straight to UTF-8 (they are ASCII) to avoid a string per record.
    private static int WriteId(Span<byte> destination, GlobalTransactionId id)
    {
        if (!Utf8.TryWrite(destination[sizeof(uint)..], CultureInfo.InvariantCulture, $"{id.Node.Value}.{id.Epoch:x}.{id.Sequence:x}", out var length))
        {
            throw new InvalidOperationException("A global transaction id did not fit its reserved space.");
        }

        BinaryPrimitives.WriteUInt32LittleEndian(destination, (uint)length);
        return sizeof(uint) + length;
    }

    private static int WriteXid(Span<byte> destination, Xid xid)
    {
        if (!Utf8.TryWrite(destination[sizeof(uint)..], CultureInfo.InvariantCulture, $"{xid.FormatId:x8}_{xid.GlobalId}_{xid.BranchQualifier}", out var length))
        {
            throw new InvalidOperationException("An XID did not fit its reserved space.");
        }

        BinaryPrimitives.WriteUInt32LittleEndian(destination, (uint)length);
        return sizeof(uint) + length;
    }

    private ref struct PayloadReader(ReadOnlySpan<byte> payload)
    {
        private readonly ReadOnlySpan<byte> _payload = payload;
        private int _position;

        public byte ReadByte() => Take(1)[0];

        public ulong ReadUInt64() => BinaryPrimitives.ReadUInt64LittleEndian(Take(sizeof(ulong)));

        public long ReadInt64() => BinaryPrimitives.ReadInt64LittleEndian(Take(sizeof(long)));

        public string ReadString() => StrictUtf8.GetString(Take(ReadLength()));

        public byte[] ReadBytes() => Take(ReadLength()).ToArray();

        /// <summary>Reads an item count, refusing counts the remaining bytes cannot hold (no huge allocation from garbage).</summary>
        public int ReadCount(int minimumItemLength)
        {
            var count = BinaryPrimitives.ReadUInt32LittleEndian(Take(sizeof(uint)));
            return count <= (uint)((_payload.Length - _position) / minimumItemLength)
                ? (int)count
                : throw new InvalidDataException($"an item count of {count} does not fit the record");
        }

        public readonly void EnsureEnd()
        {
            if (_position != _payload.Length)
            {
                throw new InvalidDataException($"{_payload.Length - _position} unexpected bytes after the record");
            }
        }

        private int ReadLength()
        {
            var length = BinaryPrimitives.ReadUInt32LittleEndian(Take(sizeof(uint)));
            return length <= (uint)(_payload.Length - _position)
                ? (int)length
                : throw new InvalidDataException($"a length of {length} runs past the end of the record");
        }

        private ReadOnlySpan<byte> Take(int count)
        {
            if (count > _payload.Length - _position)
            {
                throw new InvalidDataException("the record ends early");
            }

            var span = _payload.Slice(_position, count);
            _position += count;
            return span;
        }
    }
}
