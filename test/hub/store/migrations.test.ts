import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { MIGRATIONS, migrate, SCHEMA_VERSION } from "../../../src/hub/store/migrations.js";
import { SqliteStore } from "../../../src/hub/store/sqlite.js";
import type { DeviceRecord } from "../../../src/hub/twin/device.js";

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

  it("4 moves a schema-3 directory's devices into identities, twins and sessions, each loaded exactly as before", () => {
    const dir = mkdtempSync(join(tmpdir(), "migrate-"));
    dirs.push(dir);
    // A schema-3 database: the tables as steps 1-3 created them (steps are never edited), and devices as the
    // hub stored them then, one JSON document per device.
    const old = new Database(join(dir, "hub.db"));
    old.exec("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
    for (const step of MIGRATIONS.filter((m) => m.version <= 3)) old.exec(step.sql);
    old.exec("INSERT INTO meta (key, value) VALUES ('schema', '3')");
    const insert = old.prepare("INSERT INTO devices (id, doc) VALUES (?, ?)");
    for (const device of SCHEMA_3_DEVICES) insert.run(device.deviceId, JSON.stringify(device));
    old.close();

    const store = new SqliteStore(dir);
    const byId = (records: DeviceRecord[]) => [...records].sort((a, b) => (a.deviceId < b.deviceId ? -1 : 1));
    expect(byId(store.loadAll())).toStrictEqual(byId(SCHEMA_3_DEVICES));
    const db = store.database;
    const count = (table: string) => db.prepare(`SELECT COUNT(*) FROM ${table}`).pluck().get();
    expect(db.prepare("SELECT value FROM meta WHERE key = 'schema'").pluck().get()).toBe("4");
    expect(db.prepare("SELECT name FROM sqlite_master WHERE name = 'devices'").get()).toBeUndefined();
    for (const table of ["identities", "twins", "sessions"])
      expect(count(table)).toBe(SCHEMA_3_DEVICES.length);
    // Each part in its own row: no twin or session field in the identity, no identity field in the session.
    const identity = JSON.parse(
      db.prepare("SELECT doc FROM identities WHERE id = 'edge-1'").pluck().get() as string,
    );
    expect(Object.keys(identity)).not.toContain("twin");
    expect(Object.keys(identity)).not.toContain("lastActivityTime");
    const session = JSON.parse(
      db.prepare("SELECT doc FROM sessions WHERE id = 'edge-1'").pluck().get() as string,
    );
    expect(Object.keys(session).sort()).toEqual([
      "cloudToDeviceSubscribedAt",
      "connectionState",
      "connectionStateUpdatedTime",
      "desiredSubscribed",
      "lastActivityTime",
      "methodsSubscribed",
      "twinResponsesSubscribed",
    ]);
    expect(db.prepare("SELECT version FROM twins WHERE id = 'edge-1'").pluck().get()).toBe(7);
    store.close();

    // Opening again runs nothing twice.
    const again = new SqliteStore(dir);
    expect(byId(again.loadAll())).toStrictEqual(byId(SCHEMA_3_DEVICES));
    for (const table of ["identities", "twins", "sessions"])
      expect(again.database.prepare(`SELECT COUNT(*) FROM ${table}`).pluck().get()).toBe(
        SCHEMA_3_DEVICES.length,
      );
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

const THUMB_1 = "A".repeat(40);
const THUMB_2 = "0123456789ABCDEF".repeat(4);

/** Devices as a schema-3 hub stored them: every optional field present in one, absent in the other. */
const SCHEMA_3_DEVICES: DeviceRecord[] = [
  {
    deviceId: "edge-1",
    generationId: "638000000000000001",
    etag: "MTIzNDU2Nzg5",
    status: "disabled",
    statusReason: "maintenance, née « test »",
    statusUpdatedTime: "2024-03-01T10:00:00.000Z",
    connectionState: "Connected",
    connectionStateUpdatedTime: "2024-03-02T11:00:00.000Z",
    lastActivityTime: "2024-03-02T11:05:00.000Z",
    primaryKey: "",
    secondaryKey: "",
    authType: "selfSigned",
    primaryThumbprint: THUMB_1,
    secondaryThumbprint: THUMB_2,
    iotEdge: true,
    deviceScope: "ms-azure-iot-edge://edge-1-638000000000000001",
    parentScopes: [],
    twin: {
      version: 7,
      tags: { location: { plant: "Redmond43", floor: 2 }, constructor: "kept" },
      desired: {
        version: 3,
        props: { telemetryInterval: 30, nested: { on: true, off: false, ratio: 0.1, big: 4503599627370495 } },
        meta: {
          $lastUpdated: "2024-03-01T10:00:00.000Z",
          $lastUpdatedVersion: 3,
          telemetryInterval: { $lastUpdated: "2024-03-01T10:00:00.000Z", $lastUpdatedVersion: 3 },
          nested: {
            $lastUpdated: "2024-03-01T10:00:00.000Z",
            $lastUpdatedVersion: 3,
            on: { $lastUpdated: "2024-03-01T10:00:00.000Z", $lastUpdatedVersion: 3 },
            off: { $lastUpdated: "2024-03-01T10:00:00.000Z", $lastUpdatedVersion: 3 },
            ratio: { $lastUpdated: "2024-03-01T10:00:00.000Z", $lastUpdatedVersion: 3 },
            big: { $lastUpdated: "2024-03-01T10:00:00.000Z", $lastUpdatedVersion: 3 },
          },
        },
      },
      reported: {
        version: 4,
        props: {
          connectivity: { type: "cellular" },
          list: [1, "two", { three: 3 }],
          note: "émoji 🚀 \u2028",
          tiny: 1e-7,
        },
        meta: {
          $lastUpdated: "2024-03-02T11:05:00.000Z",
          connectivity: {
            $lastUpdated: "2024-03-02T11:05:00.000Z",
            type: { $lastUpdated: "2024-03-02T11:05:00.000Z" },
          },
          list: { $lastUpdated: "2024-03-02T11:05:00.000Z" },
          note: { $lastUpdated: "2024-03-02T11:05:00.000Z" },
          tiny: { $lastUpdated: "2024-03-02T11:05:00.000Z" },
        },
      },
    },
    desiredSubscribed: true,
    twinResponsesSubscribed: false,
    methodsSubscribed: true,
    cloudToDeviceSubscribedAt: 1709377500123,
  },
  {
    // Stored before X.509 identities and MQTT session state existed: those fields are absent and stay absent.
    deviceId: "old-sas",
    generationId: "637000000000000002",
    etag: "OTg3NjU0MzIx",
    status: "enabled",
    statusReason: null,
    statusUpdatedTime: "0001-01-01T00:00:00Z",
    connectionState: "Disconnected",
    connectionStateUpdatedTime: "0001-01-01T00:00:00Z",
    lastActivityTime: "0001-01-01T00:00:00Z",
    primaryKey: Buffer.alloc(32, 1).toString("base64"),
    secondaryKey: Buffer.alloc(32, 2).toString("base64"),
    iotEdge: false,
    twin: {
      version: 1,
      tags: {},
      desired: {
        version: 1,
        props: {},
        meta: { $lastUpdated: "2023-01-01T00:00:00.000Z", $lastUpdatedVersion: 1 },
      },
      reported: { version: 1, props: {}, meta: { $lastUpdated: "2023-01-01T00:00:00.000Z" } },
    },
  },
];
