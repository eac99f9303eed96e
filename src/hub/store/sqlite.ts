import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import type { DeviceRecord } from "../twin/device.js";
import { DataDirInUseError, isLockedError, readHolder } from "./lock.js";
import type { Store } from "./store.js";

const SCHEMA_VERSION = 1;

/**
 * SQLite store, one row per device holding its identity and twin as JSON.
 * WAL with synchronous=NORMAL: a committed transaction is in the OS before the hub answers, so it survives
 * `kill -9` of the hub (not a power cut; pass `durability: "full"` for that).
 */
export class SqliteStore implements Store {
  private readonly db: Database.Database;
  private readonly upsert: Database.Statement;
  private readonly remove: Database.Statement;
  private readonly upsertMany: (records: readonly DeviceRecord[]) => void;

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
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS devices (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
    `);
    const version = this.db.prepare("SELECT value FROM meta WHERE key = 'schema'").pluck().get() as
      | string
      | undefined;
    if (version === undefined) {
      this.db.prepare("INSERT INTO meta (key, value) VALUES ('schema', ?)").run(String(SCHEMA_VERSION));
    } else if (Number(version) > SCHEMA_VERSION) {
      throw new Error(
        `the data directory was written by a newer local-hub (schema ${version}); upgrade, or use another --data-dir`,
      );
    }
    this.upsert = this.db.prepare(
      "INSERT INTO devices (id, doc) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET doc = excluded.doc",
    );
    this.remove = this.db.prepare("DELETE FROM devices WHERE id = ?");
    this.upsertMany = this.db.transaction((records: readonly DeviceRecord[]) => {
      for (const r of records) this.upsert.run(r.deviceId, JSON.stringify(r));
    });
  }

  loadAll(): DeviceRecord[] {
    // Row by row: with 100,000 devices, holding every JSON text at once as well as the parsed records
    // would leave the hub's resident memory a hundred megabytes higher for good.
    const records: DeviceRecord[] = [];
    for (const doc of this.db.prepare("SELECT doc FROM devices").pluck().iterate()) {
      records.push(JSON.parse(doc as string));
    }
    return records;
  }

  put(record: DeviceRecord): void {
    this.upsert.run(record.deviceId, JSON.stringify(record));
  }

  putMany(records: readonly DeviceRecord[]): void {
    this.upsertMany(records);
  }

  delete(deviceId: string): void {
    this.remove.run(deviceId);
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
