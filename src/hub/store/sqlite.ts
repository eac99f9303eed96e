import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import type { DeviceRecord } from "../twin/device.js";
import { sectionJson } from "../twin/twin.js";
import { DataDirInUseError, isLockedError, readHolder } from "./lock.js";
import { migrate } from "./migrations.js";
import { identityOf, recordOf, sessionOf } from "./rows.js";
import { Part, type RecordChange, type Store } from "./store.js";

/**
 * SQLite store: each device's identity, twin and session in a row of their own (`identities`, `twins`,
 * `sessions`; see migrations.ts), so a change writes only the parts it changed: a reported patch updates the
 * twin's version and reported section, nothing else.
 * WAL with synchronous=NORMAL: a committed transaction is in the OS before the hub answers, so it survives
 * `kill -9` of the hub (not a power cut; pass `durability: "full"` for that).
 */
export class SqliteStore implements Store {
  private readonly db: Database.Database;
  private readonly transaction: (changes: readonly RecordChange[], deleted: readonly string[]) => void;

  constructor(dataDir: string | undefined, durability: "normal" | "full" = "normal") {
    if (dataDir) {
      mkdirSync(dataDir, { recursive: true, mode: 0o700 });
      ownerOnly(join(dataDir, "hub.db"));
    }
    // A file database is held exclusively (see lock.ts): no waiting for a lock that only another hub can hold.
    this.db = new Database(dataDir ? join(dataDir, "hub.db") : ":memory:", dataDir ? { timeout: 0 } : {});
    if (dataDir) {
      try {
        // "PRAGMA locking_mode": in EXCLUSIVE mode the connection never releases its file locks; set before WAL
        // mode is entered, WAL uses no shared memory and the exclusive lock is held from the first access
        // (sqlite.org/wal.html, "Use of WAL Without Shared-Memory"). The empty write takes it now.
        this.db.pragma("locking_mode = EXCLUSIVE");
        this.db.pragma("journal_mode = WAL");
        this.db.exec("BEGIN EXCLUSIVE; COMMIT");
      } catch (error) {
        this.db.close();
        if (isLockedError(error)) throw new DataDirInUseError(dataDir, readHolder(dataDir));
        throw error;
      }
      this.db.pragma(`synchronous = ${durability === "full" ? "FULL" : "NORMAL"}`);
    }
    // Numbered steps (migrations.ts): a directory of an older local-hub is upgraded in place.
    migrate(this.db);
    const identity = this.db.prepare(
      "INSERT INTO identities (id, doc) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET doc = excluded.doc",
    );
    const twin = this.db.prepare(
      "INSERT INTO twins (id, version, tags, desired, reported) VALUES (?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE " +
        "SET version = excluded.version, tags = excluded.tags, desired = excluded.desired, reported = excluded.reported",
    );
    const reported = this.db.prepare("UPDATE twins SET version = ?, reported = ? WHERE id = ?");
    const session = this.db.prepare(
      "INSERT INTO sessions (id, doc) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET doc = excluded.doc",
    );
    const removals = ["identities", "twins", "sessions"].map((table) =>
      this.db.prepare(`DELETE FROM ${table} WHERE id = ?`),
    );
    this.transaction = this.db.transaction((changes: readonly RecordChange[], deleted: readonly string[]) => {
      for (const id of deleted) for (const remove of removals) remove.run(id);
      for (const { record: r, parts, texts } of changes) {
        const id = r.deviceId;
        const t = r.twin;
        if (parts & Part.IDENTITY) identity.run(id, JSON.stringify(identityOf(r)));
        if (parts & Part.TWIN) {
          twin.run(
            id,
            t.version,
            texts?.tags ?? JSON.stringify(t.tags),
            sectionJson(t.desired, texts?.desired),
            sectionJson(t.reported, texts?.reported),
          );
        } else if (parts & Part.REPORTED) {
          if (reported.run(t.version, sectionJson(t.reported, texts?.reported), id).changes !== 1)
            throw new Error(`no twin stored for device ${id}`);
        }
        if (parts & (Part.SESSION | Part.ACTIVITY)) session.run(id, JSON.stringify(sessionOf(r)));
      }
    });
  }

  /** The same database for the hub's other tables (the events of the Event Hubs-compatible endpoint). */
  get database(): Database.Database {
    return this.db;
  }

  loadAll(): DeviceRecord[] {
    // Row by row: with 100,000 devices, holding every JSON text at once as well as the parsed records
    // would leave the hub's resident memory a hundred megabytes higher for good.
    const records: DeviceRecord[] = [];
    const rows = this.db
      .prepare(
        "SELECT i.doc, t.version, t.tags, t.desired, t.reported, s.doc FROM identities i " +
          "JOIN twins t ON t.id = i.id LEFT JOIN sessions s ON s.id = i.id",
      )
      .raw()
      .iterate() as Iterable<[string, number, string, string, string, string | null]>;
    for (const [identity, version, tags, desired, reported, session] of rows) {
      records.push(
        recordOf(
          JSON.parse(identity),
          { version, tags: JSON.parse(tags), desired: JSON.parse(desired), reported: JSON.parse(reported) },
          session === null ? {} : JSON.parse(session),
        ),
      );
    }
    return records;
  }

  write(changes: readonly RecordChange[], deleted: readonly string[] = []): void {
    this.transaction(changes, deleted);
  }

  delete(deviceId: string): void {
    this.transaction([], [deviceId]);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

/**
 * The database holds every device's keys, so it is owner-only like the key files, even in a data directory
 * the user created with ordinary permissions. SQLite gives its -wal and -shm files the database file's mode;
 * files left by an older version are tightened too.
 */
function ownerOnly(file: string): void {
  closeSync(openSync(file, "a", 0o600));
  for (const f of [file, `${file}-wal`, `${file}-shm`]) if (existsSync(f)) chmodSync(f, 0o600);
}
