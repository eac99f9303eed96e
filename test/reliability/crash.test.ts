import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import type { MqttClient } from "mqtt";
import { afterAll, describe, expect, it } from "vitest";
import {
  deviceToken,
  type HubProcess,
  mqttLogin,
  prng,
  rest,
  serviceToken,
  sleep,
  spawnHub,
  subscribe,
} from "./support.js";

/**
 * Crash safety: while writers stream twin patches over REST, device creations over REST and reported
 * patches over MQTT, recording every acknowledgement, the hub (the built `local-hub` in a child process)
 * is killed with SIGKILL at a random moment and restarted, 20 times. After every restart: the data
 * directory opens (the hub starts and SQLite's integrity check passes), every acknowledged write is there,
 * nothing that was never sent is there, and no version is lower than one already acknowledged or seen.
 *
 * The kill moments come from a seeded generator; the seed is printed, and CRASH_SEED=<seed> replays a run.
 */

const ROUNDS = 20;

/** What one writer sent and what the hub acknowledged, per round: the values are a per-round sequence. */
interface Ledger {
  sent: Map<number, number>;
  acked: Map<number, number>;
  /** Highest version the hub acknowledged (twin version for REST, reported $version for MQTT). */
  maxAckedVersion: number;
  acks: number;
}
const ledger = (): Ledger => ({ sent: new Map(), acked: new Map(), maxAckedVersion: 0, acks: 0 });

describe("crash safety: SIGKILL at random moments while writing, 20 rounds", () => {
  const dir = mkdtempSync(join(tmpdir(), "crash-"));
  const dataDir = join(dir, "data");
  const envFile = join(dir, ".env");
  let hub: HubProcess | undefined;
  afterAll(async () => {
    await hub?.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  it("keeps every acknowledged write, never moves a version backwards, and reopens the data directory every time", async () => {
    const seed = Number(process.env.CRASH_SEED ?? Math.floor(Math.random() * 2 ** 31));
    const random = prng(seed);
    console.log(`[reliability] crash safety: seed ${seed} (replay with CRASH_SEED=${seed})`);

    const mqttKey = randomBytes(32).toString("base64");
    const twinWrites = ledger();
    const reportedWrites = ledger();
    const created: string[] = [];
    let createAttempts = 0;
    /** Highest versions seen after a restart, to check they never go backwards across restarts. */
    const seen = { twin: 0, desired: 0, reported: 0 };
    const killedAfterMs: number[] = [];

    const spawn = async () => {
      // After a kill, before the restart: SQLite finds the file consistent. (Once up, the hub holds the database
      // in exclusive locking mode, so nothing else can open it then; that lock dies with the killed hub.)
      if (existsSync(join(dataDir, "hub.db"))) {
        const db = new Database(join(dataDir, "hub.db"), { readonly: true, fileMustExist: true });
        try {
          expect(db.pragma("integrity_check", { simple: true })).toBe("ok");
        } finally {
          db.close();
        }
      }
      hub = await spawnHub(dataDir, envFile);
      // The data directory opened cleanly, and the hub holds it: a second opener is refused at once.
      const other = new Database(join(dataDir, "hub.db"), {
        readonly: true,
        fileMustExist: true,
        timeout: 0,
      });
      try {
        expect(() => other.pragma("integrity_check", { simple: true })).toThrow(/database is locked/);
      } finally {
        other.close();
      }
      return hub;
    };

    /** After a restart: everything acknowledged is present, nothing unsent is, versions only grow. */
    const verify = async (h: HubProcess) => {
      const owner = serviceToken(h);
      const restTwin = (await rest(h, "GET", "/twins/crash-rest", { auth: owner })).json<{
        version: number;
        properties: { desired: Record<string, number> };
      }>();
      const mqttTwin = (await rest(h, "GET", "/twins/crash-mqtt", { auth: owner })).json<{
        version: number;
        properties: { reported: Record<string, number> };
      }>();
      const desired = restTwin.properties.desired;
      const reported = mqttTwin.properties.reported;
      expect(restTwin.version).toBeGreaterThanOrEqual(twinWrites.maxAckedVersion);
      expect(reported.$version).toBeGreaterThanOrEqual(reportedWrites.maxAckedVersion);
      expect(restTwin.version).toBeGreaterThanOrEqual(seen.twin);
      expect(desired.$version).toBeGreaterThanOrEqual(seen.desired);
      expect(reported.$version).toBeGreaterThanOrEqual(seen.reported);
      seen.twin = restTwin.version;
      seen.desired = desired.$version;
      seen.reported = reported.$version;
      for (const [writes, section] of [
        [twinWrites, desired],
        [reportedWrites, reported],
      ] as const) {
        for (const [round, sent] of writes.sent) {
          const value = section[`r${round}`];
          const acked = writes.acked.get(round);
          // The last acknowledged value of the round (or a later one that was in flight) is there.
          if (acked !== undefined) expect(value, `round ${round}`).toBeGreaterThanOrEqual(acked);
          // Nothing beyond what was sent.
          if (value !== undefined) expect(value, `round ${round}`).toBeLessThanOrEqual(sent);
        }
      }
      // Each REST patch adds one to the twin version, so the version counts the patches that were kept:
      // at least every acknowledged one.
      const list = (await rest(h, "GET", "/devices", { auth: owner })).json<Array<{ deviceId: string }>>();
      const ids = new Set(list.map((d) => d.deviceId));
      for (const id of created) {
        // GET /devices lists at most 1,000 identities; any beyond are looked up one by one.
        const found =
          ids.has(id) ||
          (await rest(h, "GET", `/devices/${encodeURIComponent(id)}`, { auth: owner })).status === 200;
        expect(found, `created device ${id}`).toBe(true);
      }
    };

    for (let round = 1; round <= ROUNDS; round++) {
      const h = await spawn();
      const owner = serviceToken(h);
      if (round === 1) {
        for (const [id, body] of [
          ["crash-rest", {}],
          [
            "crash-mqtt",
            { authentication: { symmetricKey: { primaryKey: mqttKey, secondaryKey: mqttKey } } },
          ],
        ] as const) {
          const res = await rest(h, "PUT", `/devices/${id}`, {
            auth: owner,
            body: JSON.stringify({ deviceId: id, ...body }),
          });
          expect(res.status).toBe(200);
        }
      } else {
        await verify(h);
      }

      let running = true;
      // Set just before the kill: a writer may see its connection drop before the kill's exit event arrives.
      let killing = false;
      // Writer 1: desired-property patches over REST, one at a time, each acknowledged with the new twin.
      const restWriter = (async () => {
        for (let n = 1; running; n++) {
          twinWrites.sent.set(round, n);
          const res = await rest(h, "PATCH", "/twins/crash-rest", {
            auth: owner,
            body: JSON.stringify({ properties: { desired: { [`r${round}`]: n } } }),
            headers: { "if-match": "*" },
          }).catch(() => undefined);
          if (!res) return;
          expect(res.status, res.body).toBe(200);
          twinWrites.acked.set(round, n);
          twinWrites.maxAckedVersion = Math.max(
            twinWrites.maxAckedVersion,
            res.json<{ version: number }>().version,
          );
          twinWrites.acks++;
        }
      })();
      // Writer 2: registry writes over REST, one new device at a time.
      const registryWriter = (async () => {
        for (let n = 1; running; n++) {
          const id = `c-${round}-${n}`;
          createAttempts++;
          const res = await rest(h, "PUT", `/devices/${id}`, {
            auth: owner,
            body: JSON.stringify({ deviceId: id }),
          }).catch(() => undefined);
          if (!res) return;
          expect(res.status, res.body).toBe(200);
          created.push(id);
        }
      })();
      // Writer 3: reported-property patches over MQTT, each acknowledged with its new reported $version.
      const mqttWriter = (async () => {
        const login = await mqttLogin(h, "crash-mqtt", deviceToken(h, "crash-mqtt", mqttKey));
        if (!login.ok) {
          // Only acceptable if the hub was being killed.
          expect(killing, login.reason).toBe(true);
          return;
        }
        const client: MqttClient = login.client;
        client.on("error", () => {});
        const pending = new Map<string, (ack: { status: number; version: number } | undefined) => void>();
        client.on("message", (topic) => {
          const m = /^\$iothub\/twin\/res\/(\d+)\/\?\$rid=([^&]+)(?:&\$version=(\d+))?/.exec(topic);
          if (m) pending.get(m[2])?.({ status: Number(m[1]), version: Number(m[3]) });
        });
        client.on("close", () => {
          for (const resolve of pending.values()) resolve(undefined);
        });
        try {
          await subscribe(client, "$iothub/twin/res/#");
        } catch {
          return;
        }
        for (let n = 1; running && client.connected; n++) {
          const rid = `${round}-${n}`;
          reportedWrites.sent.set(round, n);
          const ack = await new Promise<{ status: number; version: number } | undefined>((resolve) => {
            pending.set(rid, resolve);
            client.publish(
              `$iothub/twin/PATCH/properties/reported/?$rid=${rid}`,
              JSON.stringify({ [`r${round}`]: n }),
            );
          });
          pending.delete(rid);
          if (!ack) break;
          expect(ack.status).toBe(204);
          reportedWrites.acked.set(round, n);
          reportedWrites.maxAckedVersion = Math.max(reportedWrites.maxAckedVersion, ack.version);
          reportedWrites.acks++;
        }
        client.end(true);
      })();

      const wait = 100 + Math.floor(random() * 1400);
      killedAfterMs.push(wait);
      await sleep(wait);
      killing = true;
      const exit = await h.kill("SIGKILL");
      expect(exit.signal).toBe("SIGKILL");
      running = false;
      await Promise.all([restWriter, registryWriter, mqttWriter]);
    }

    // One last start: everything acknowledged in the last round is there too; then a clean stop.
    const last = await spawn();
    await verify(last);
    const exit = await last.kill("SIGTERM");
    expect(exit.code).toBe(0);

    // The run did exercise all three writers across the rounds.
    expect(twinWrites.acks).toBeGreaterThan(ROUNDS);
    expect(reportedWrites.acks).toBeGreaterThan(ROUNDS);
    expect(created.length).toBeGreaterThan(ROUNDS);
    console.log(
      `[reliability] crash safety: ${ROUNDS} SIGKILLs (after ${Math.min(...killedAfterMs)}-${Math.max(...killedAfterMs)} ms of writing), ` +
        `${twinWrites.acks} twin patches, ${reportedWrites.acks} reported patches and ${created.length} of ${createAttempts} device creations acknowledged; ` +
        `all present after every restart`,
    );
  }, 240_000);
});
