namespace TwoPC.Durability.PostgreSql;

public sealed partial class PostgreSqlTransactionLog
{
    /// <summary>
    /// The DDL of the log's schema and tables (idempotent: <c>IF NOT EXISTS</c>), for a DBA who creates them ahead
    /// of time and sets <see cref="PostgreSqlTransactionLogOptions.CreateSchema"/> to <see langword="false"/>.
    /// </summary>
    /// <param name="schema">The schema name (an identifier: letters, digits and _, at most 63 characters).</param>
    /// <exception cref="ArgumentException"><paramref name="schema"/> is not an identifier.</exception>
    public static string CreateSchemaSql(string schema = PostgreSqlTransactionLogOptions.DefaultSchema)
    {
        if (!PostgreSqlTransactionLogOptions.IsIdentifier(schema))
        {
            throw new ArgumentException($"Schema '{schema}' is not an identifier (a letter or _, then letters, digits or _; at most 63 characters).", nameof(schema));
        }

        var s = Quote(schema);
        return $"""
            CREATE SCHEMA IF NOT EXISTS {s};
            -- One row per coordinator node: its lease (on the database clock) and its fencing epoch.
            CREATE TABLE IF NOT EXISTS {s}.nodes (
                node_id    text        PRIMARY KEY,
                epoch      bigint      NOT NULL,
                expires_at timestamptz NOT NULL,
                adopted_by text        NULL
            );
            -- Commit decisions without an END (the WAL's CommitDecision record encoding in payload).
            CREATE TABLE IF NOT EXISTS {s}.decisions (
                gtrid      text        PRIMARY KEY,
                node_id    text        NOT NULL,
                epoch      bigint      NOT NULL,
                decided_at timestamptz NOT NULL,
                payload    bytea       NOT NULL
            );
            CREATE INDEX IF NOT EXISTS decisions_node_id ON {s}.decisions (node_id);
            -- Heuristic outcomes not yet forgotten (the WAL's Heuristic record encoding in payload).
            CREATE TABLE IF NOT EXISTS {s}.heuristics (
                gtrid   text  PRIMARY KEY,
                node_id text  NOT NULL,
                payload bytea NOT NULL
            );
            CREATE INDEX IF NOT EXISTS heuristics_node_id ON {s}.heuristics (node_id);
            """;
    }

    private static string Quote(string identifier) => "\"" + identifier + "\"";

    /// <summary>The statements of one log, with its schema filled in.</summary>
    private sealed class Statements(string schema)
    {
        private readonly string _s = Quote(schema);

        // Serialises concurrent schema creation by several nodes (CREATE ... IF NOT EXISTS races on the catalog).
        // (The schema is a checked identifier, so it is safe inside the literal.)
        public string SchemaLock => $"SELECT pg_advisory_xact_lock(hashtext('twopc.schema.{schema}'))";

        public string CreateSchema { get; } = CreateSchemaSql(schema);

        // $1 node, $2 lease.
        public string InsertNode => $"INSERT INTO {_s}.nodes (node_id, epoch, expires_at) VALUES ($1, 1, now() + $2) ON CONFLICT (node_id) DO NOTHING RETURNING epoch, expires_at";

        // A new run of the node: only once its previous lease (this node id in another process, or a run that died) lapsed.
        public string StartEpoch => $"UPDATE {_s}.nodes SET epoch = epoch + 1, expires_at = now() + $2, adopted_by = NULL WHERE node_id = $1 AND expires_at < now() RETURNING epoch, expires_at";

        // Nodes this node's previous run adopted: that run is gone, so they are candidates again.
        public string ReleaseAdopted => $"UPDATE {_s}.nodes SET adopted_by = NULL WHERE adopted_by = $1";

        public string SelectDecisions => $"SELECT payload FROM {_s}.decisions WHERE node_id = $1";

        public string SelectHeuristics => $"SELECT payload FROM {_s}.heuristics WHERE node_id = $1";

        // The fenced batch (see the comment at the top of PostgreSqlTransactionLog.cs). $1 node, $2 epoch,
        // $3 gtrids, $4 decided_at, $5 payloads (decisions), $6 gtrids, $7 payloads (heuristics), $8 ENDed gtrids: their
        // rows are deleted in the same round trip, unfenced (an END always follows its record's earlier batch).
        public string InsertBatch => $"""
            WITH l AS (SELECT 1 FROM {_s}.nodes WHERE node_id = $1 AND epoch = $2 FOR SHARE),
            d AS (INSERT INTO {_s}.decisions (gtrid, node_id, epoch, decided_at, payload)
                  SELECT u.g, $1, $2, u.t, u.p FROM l, unnest($3::text[], $4::timestamptz[], $5::bytea[]) AS u(g, t, p)
                  ON CONFLICT (gtrid) DO UPDATE SET payload = EXCLUDED.payload, decided_at = EXCLUDED.decided_at
                  RETURNING 1),
            h AS (INSERT INTO {_s}.heuristics (gtrid, node_id, payload)
                  SELECT u.g, $1, u.p FROM l, unnest($6::text[], $7::bytea[]) AS u(g, p)
                  ON CONFLICT (gtrid) DO UPDATE SET payload = EXCLUDED.payload, node_id = EXCLUDED.node_id
                  RETURNING 1),
            ed AS (DELETE FROM {_s}.decisions WHERE gtrid = ANY($8)),
            eh AS (DELETE FROM {_s}.heuristics WHERE gtrid = ANY($8))
            SELECT (SELECT count(*) FROM l), (SELECT count(*) FROM d), (SELECT count(*) FROM h)
            """;

        // After a batch whose commit outcome is unknown: which of its decisions are stored.
        public string PresentDecisions => $"SELECT gtrid FROM {_s}.decisions WHERE gtrid = ANY($1)";

        // ENDs alone: committed without waiting for the server's WAL flush (a lost END only repeats an idempotent
        // commit after a restart), so compaction costs no fsync. The set_config CTE is referenced so that it runs.
        public string DeleteEnded => $"""
            WITH c AS (SELECT set_config('synchronous_commit', 'off', true)),
            d AS (DELETE FROM {_s}.decisions WHERE gtrid = ANY($1) AND EXISTS (SELECT 1 FROM c))
            DELETE FROM {_s}.heuristics WHERE gtrid = ANY($1) AND EXISTS (SELECT 1 FROM c)
            """;

        // $1 node, $2 epoch, $3 lease.
        public string Renew => $"UPDATE {_s}.nodes SET expires_at = now() + $3 WHERE node_id = $1 AND epoch = $2 RETURNING expires_at";

        // A clean shutdown hands the lease back at once, so a restart or a takeover need not wait for it to lapse.
        public string Release => $"UPDATE {_s}.nodes SET expires_at = now() - interval '1 millisecond' WHERE node_id = $1 AND epoch = $2";

        // $1 self.
        public string Candidates => $"""
            SELECT n.node_id, n.epoch, n.expires_at FROM {_s}.nodes n LEFT JOIN {_s}.nodes a ON a.node_id = n.adopted_by
            WHERE n.node_id <> $1 AND n.expires_at < now()
              AND (n.adopted_by IS NULL OR (n.adopted_by <> $1 AND (a.node_id IS NULL OR a.expires_at < now())))
            ORDER BY n.node_id
            """;

        // $1 node taken over, $2 self, $3 self's epoch. Only while the node's lease is still expired and no other live
        // node adopted it, and only by a taker that still holds its own lease.
        public string TakeOver => $"""
            UPDATE {_s}.nodes n SET epoch = n.epoch + 1, adopted_by = $2
            WHERE n.node_id = $1 AND n.node_id <> $2 AND n.expires_at < now()
              AND (n.adopted_by IS NULL OR n.adopted_by = $2
                   OR NOT EXISTS (SELECT 1 FROM {_s}.nodes a WHERE a.node_id = n.adopted_by AND a.expires_at >= now()))
              AND EXISTS (SELECT 1 FROM {_s}.nodes s WHERE s.node_id = $2 AND s.epoch = $3 AND s.expires_at >= now())
            RETURNING n.epoch
            """;

        // $1 gtrid, $2 its node: one snapshot for both, so a decision committed before a takeover's epoch raise is seen with it.
        public string FindDecision => $"SELECT EXISTS (SELECT 1 FROM {_s}.decisions WHERE gtrid = $1), (SELECT epoch FROM {_s}.nodes WHERE node_id = $2)";
    }
}
