import type Database from "better-sqlite3";

/**
 * The database schema as numbered steps. A data directory records the last step it went through (meta
 * `schema`); opening it runs the later steps in order, each in one transaction with its version, so an
 * existing `.local-hub` upgrades in place and a half-applied step never exists. Steps are only ever
 * appended: a released step is never edited, since directories already went through it.
 */
export interface Migration {
  version: number;
  description: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: "devices: identity and twin of each device as one JSON document",
    sql: "CREATE TABLE IF NOT EXISTS devices (id TEXT PRIMARY KEY, doc TEXT NOT NULL);",
  },
  {
    version: 2,
    description:
      "events: device-to-cloud messages of the Event Hubs-compatible endpoint, per partition in order",
    sql: `
      CREATE TABLE event_partitions (
        partition INTEGER PRIMARY KEY,
        next_sequence INTEGER NOT NULL,
        next_offset INTEGER NOT NULL
      );
      CREATE TABLE events (
        partition INTEGER NOT NULL,
        sequence INTEGER NOT NULL,
        offset INTEGER NOT NULL,
        enqueued INTEGER NOT NULL,
        device TEXT NOT NULL,
        props TEXT NOT NULL,
        body BLOB NOT NULL,
        PRIMARY KEY (partition, sequence)
      ) WITHOUT ROWID;
      CREATE INDEX events_by_offset ON events (partition, offset);
      CREATE INDEX events_by_time ON events (enqueued);
    `,
  },
  {
    version: 3,
    description:
      "cloud-to-device: each device's queue of pending messages, and the feedback records not yet read",
    sql: `
      CREATE TABLE c2d_messages (
        seq INTEGER PRIMARY KEY,
        device TEXT NOT NULL,
        enqueued INTEGER NOT NULL,
        expires INTEGER NOT NULL,
        ack TEXT NOT NULL,
        props TEXT NOT NULL,
        body BLOB NOT NULL
      );
      CREATE INDEX c2d_messages_by_device ON c2d_messages (device, seq);
      CREATE TABLE c2d_feedback (
        seq INTEGER PRIMARY KEY,
        created INTEGER NOT NULL,
        record TEXT NOT NULL
      );
    `,
  },
  {
    version: 4,
    description:
      "devices split by concern: identities, twins (tags and each section apart) and sessions, so that a " +
      "change writes only the row it changes (a reported patch: the twin's version and reported section)",
    // Every devices row becomes one row in each table, with SQLite's JSON functions: `->` keeps JSON values as
    // JSON (true stays true), and json_patch drops the nulls json_object makes of absent session fields, so they
    // stay absent. A record without a twin, which no local-hub wrote, gets an empty one.
    sql: `
      CREATE TABLE identities (id TEXT PRIMARY KEY, doc TEXT NOT NULL) WITHOUT ROWID;
      CREATE TABLE twins (
        id TEXT PRIMARY KEY,
        version INTEGER NOT NULL,
        tags TEXT NOT NULL,
        desired TEXT NOT NULL,
        reported TEXT NOT NULL
      ) WITHOUT ROWID;
      CREATE TABLE sessions (id TEXT PRIMARY KEY, doc TEXT NOT NULL) WITHOUT ROWID;
      INSERT INTO identities (id, doc)
        SELECT id, json_remove(doc, '$.twin', '$.connectionState', '$.connectionStateUpdatedTime',
          '$.lastActivityTime', '$.desiredSubscribed', '$.twinResponsesSubscribed', '$.methodsSubscribed',
          '$.cloudToDeviceSubscribedAt')
        FROM devices;
      INSERT INTO twins (id, version, tags, desired, reported)
        SELECT id,
          coalesce(doc ->> '$.twin.version', 1),
          coalesce(doc -> '$.twin.tags', '{}'),
          coalesce(doc -> '$.twin.desired', '{"version":1,"props":{},"meta":{}}'),
          coalesce(doc -> '$.twin.reported', '{"version":1,"props":{},"meta":{}}')
        FROM devices;
      INSERT INTO sessions (id, doc)
        SELECT id, json_patch('{}', json_object(
          'connectionState', doc -> '$.connectionState',
          'connectionStateUpdatedTime', doc -> '$.connectionStateUpdatedTime',
          'lastActivityTime', doc -> '$.lastActivityTime',
          'desiredSubscribed', doc -> '$.desiredSubscribed',
          'twinResponsesSubscribed', doc -> '$.twinResponsesSubscribed',
          'methodsSubscribed', doc -> '$.methodsSubscribed',
          'cloudToDeviceSubscribedAt', doc -> '$.cloudToDeviceSubscribedAt'))
        FROM devices;
      DROP TABLE devices;
    `,
  },
];

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1].version;

/** Brings `db` to SCHEMA_VERSION; refuses a database written by a newer local-hub. */
export function migrate(db: Database.Database): void {
  db.exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
  const stored = db.prepare("SELECT value FROM meta WHERE key = 'schema'").pluck().get() as
    | string
    | undefined;
  const current = stored === undefined ? 0 : Number(stored);
  if (current > SCHEMA_VERSION) {
    throw new Error(
      `the data directory was written by a newer local-hub (schema ${current}); upgrade, or use another --data-dir`,
    );
  }
  const setVersion = db.prepare(
    "INSERT INTO meta (key, value) VALUES ('schema', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
  );
  for (const step of MIGRATIONS) {
    if (step.version <= current) continue;
    db.transaction(() => {
      db.exec(step.sql);
      setVersion.run(String(step.version));
    })();
  }
}
