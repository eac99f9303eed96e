import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { MIGRATIONS, migrate, SCHEMA_VERSION } from "../../../src/hub/store/migrations.js";
import { SqliteStore } from "../../../src/hub/store/sqlite.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("schema migrations", () => {
  it("are numbered 1, 2, ... in order", () => {
    expect(MIGRATIONS.map((m) => m.version)).toEqual(MIGRATIONS.map((_, i) => i + 1));
    expect(SCHEMA_VERSION).toBe(MIGRATIONS.length);
  });

  it("upgrade a data directory written by the first local-hub (schema 1) in place, keeping its devices", () => {
    const dir = mkdtempSync(join(tmpdir(), "migrate-"));
    dirs.push(dir);
    // Exactly what the first version created.
    const old = new Database(join(dir, "hub.db"));
    old.exec(`
      CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS devices (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
      INSERT INTO meta (key, value) VALUES ('schema', '1');
    `);
    old.prepare("INSERT INTO devices (id, doc) VALUES (?, ?)").run("d1", JSON.stringify({ deviceId: "d1" }));
    old.close();

    const store = new SqliteStore(dir);
    expect(store.loadAll().map((r) => r.deviceId)).toEqual(["d1"]);
    const db = store.database;
    expect(db.prepare("SELECT value FROM meta WHERE key = 'schema'").pluck().get()).toBe(
      String(SCHEMA_VERSION),
    );
    expect(db.prepare("SELECT COUNT(*) FROM events").pluck().get()).toBe(0);
    store.close();
    // Opening again runs nothing twice.
    const again = new SqliteStore(dir);
    expect(again.loadAll()).toHaveLength(1);
    again.close();
  });

  it("refuse a database from a newer local-hub", () => {
    const db = new Database(":memory:");
    db.exec(
      "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL); INSERT INTO meta VALUES ('schema', '999')",
    );
    expect(() => migrate(db)).toThrow(/newer local-hub/);
  });
});
