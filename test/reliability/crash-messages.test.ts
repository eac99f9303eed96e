import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import type { MqttClient } from "mqtt";
import rhea, { type Connection, type EventContext } from "rhea";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
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
 * Crash safety of messages: while a device publishes QoS 1 telemetry (recording each PUBACK) and a service sends
 * cloud-to-device messages over AMQP (recording each "accepted") to a second device that receives and
 * acknowledges them (online every other round, so queues are killed full as well as flowing), the hub (the built
 * `local-hub` in a child process) is killed with SIGKILL at a random moment, 10 times. After every kill, the database is opened as it was left: every PUBACK'd telemetry message is
 * in the Event Hubs-compatible endpoint's store, and every accepted cloud-to-device message either reached the
 * device or is still in its queue. CRASH_SEED=<seed> replays a run.
 */

const ROUNDS = 10;

/** A raw AMQP connection with an iothubowner put-token on $cbs, as azure-iothub opens it. */
async function serviceConnection(h: HubProcess): Promise<Connection> {
  const container = rhea.create_container();
  const connection = await new Promise<Connection>((resolve, reject) => {
    const c = container.connect({
      host: "localhost",
      port: h.port,
      transport: "tls",
      ca: h.caPem,
      servername: "localhost",
      reconnect: false,
    } as rhea.ConnectionOptions);
    c.once("connection_open", () => resolve(c));
    c.once("disconnected", (ctx) => reject(ctx.error ?? new Error("disconnected")));
    c.on("error", () => {});
  });
  await new Promise<void>((resolve, reject) => {
    // The hub may be killed before it answers.
    connection.once("disconnected", () => reject(new Error("disconnected before the put-token answer")));
    const receiver = connection.open_receiver({
      source: { address: "$cbs" },
      target: { address: "cbs-reply" },
    });
    const sender = connection.open_sender({ target: { address: "$cbs" } });
    receiver.on("message", (ctx) => {
      const status = ctx.message?.application_properties?.["status-code"];
      if (status === 200) resolve();
      else reject(new Error(`put-token: ${status}`));
    });
    receiver.on("receiver_open", () =>
      sender.send({
        message_id: "put-1",
        reply_to: "cbs-reply",
        body: serviceToken(h),
        application_properties: {
          operation: "put-token",
          type: "servicebus.windows.net:sastoken",
          name: h.hostName,
        },
      }),
    );
  });
  return connection;
}

describe("crash safety of messages: SIGKILL while telemetry and cloud-to-device messages flow, 10 rounds", () => {
  let dir = "";
  let dataDir = "";
  let envFile = "";
  let hub: HubProcess | undefined;
  // Made in beforeAll, not at collection: a run that filters this block out leaves nothing behind.
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "crash-msg-"));
    dataDir = join(dir, "data");
    envFile = join(dir, ".env");
  });
  afterAll(async () => {
    await hub?.kill("SIGKILL");
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("keeps every PUBACK'd telemetry message and every accepted cloud-to-device message", async () => {
    const seed = Number(process.env.CRASH_SEED ?? Math.floor(Math.random() * 2 ** 31));
    const random = prng(seed);
    console.log(`[reliability] message crash safety: seed ${seed} (replay with CRASH_SEED=${seed})`);
    const key = randomBytes(32).toString("base64");
    const telemetryAcked = new Set<string>();
    const c2dAccepted = new Set<string>();
    const c2dReceived = new Set<string>();

    /** The database as the killed hub left it. */
    const check = () => {
      if (!existsSync(join(dataDir, "hub.db"))) return;
      const db = new Database(join(dataDir, "hub.db"), { readonly: true, fileMustExist: true });
      try {
        expect(db.pragma("integrity_check", { simple: true })).toBe("ok");
        const stored = new Set(
          (db.prepare("SELECT props FROM events WHERE device = 'crash-d2c'").pluck().all() as string[]).map(
            (p) => (JSON.parse(p) as { p: { message_id?: string } }).p.message_id,
          ),
        );
        for (const id of telemetryAcked) expect(stored.has(id), `telemetry ${id}`).toBe(true);
        const queued = new Set(
          (
            db.prepare("SELECT props FROM c2d_messages WHERE device = 'crash-c2d'").pluck().all() as string[]
          ).map((p) => (JSON.parse(p) as { messageId?: string }).messageId),
        );
        for (const id of c2dAccepted) expect(queued.has(id) || c2dReceived.has(id), `c2d ${id}`).toBe(true);
      } finally {
        db.close();
      }
    };

    for (let round = 1; round <= ROUNDS; round++) {
      check();
      const h = await spawnHub(dataDir, envFile);
      hub = h;
      if (round === 1) {
        for (const id of ["crash-d2c", "crash-c2d"]) {
          const res = await rest(h, "PUT", `/devices/${id}`, {
            auth: serviceToken(h),
            body: JSON.stringify({
              deviceId: id,
              authentication: { symmetricKey: { primaryKey: key, secondaryKey: key } },
            }),
          });
          expect(res.status).toBe(200);
        }
        // The receiving device subscribes once, with a persistent session, before any message is sent (a message
        // sent before a device's first subscription is not for it).
        const first = await mqttLogin(h, "crash-c2d", deviceToken(h, "crash-c2d", key), { clean: false });
        if (!first.ok) throw new Error(first.reason);
        await subscribe(first.client, "devices/crash-c2d/messages/devicebound/#", 1);
        first.client.end(true);
        await sleep(50);
      }
      let running = true;

      // Telemetry: QoS 1 publishes one after another, each recorded once PUBACK'd.
      const telemetry = (async () => {
        const login = await mqttLogin(h, "crash-d2c", deviceToken(h, "crash-d2c", key));
        if (!login.ok) return;
        const client: MqttClient = login.client;
        client.on("error", () => {});
        let unanswered: ((acked: boolean) => void) | undefined;
        client.once("close", () => unanswered?.(false));
        for (let n = 1; running && client.connected; n++) {
          const id = `t-${round}-${n}`;
          const acked = await new Promise<boolean>((resolve) => {
            unanswered = resolve;
            client.publish(
              `devices/crash-d2c/messages/events/%24.mid=${id}`,
              `{"n":${n}}`,
              { qos: 1 },
              (err) => resolve(!err),
            );
          });
          if (!acked) break;
          telemetryAcked.add(id);
        }
        client.end(true);
      })();

      // The receiving device: a persistent session that acknowledges everything it gets, online in even rounds
      // only, so in odd rounds its queue fills (up to 50; the rest is refused) and is killed with it.
      const receiving = (async () => {
        if (round % 2 === 1) return;
        const login = await mqttLogin(h, "crash-c2d", deviceToken(h, "crash-c2d", key), { clean: false });
        if (!login.ok) return;
        const client = login.client;
        // Listened for at once: the hub may be killed (and the connection close) before the SUBACK.
        const closed = new Promise((r) => client.once("close", r));
        client.on("error", () => {});
        client.on("message", (topic) => {
          const mid = /%24\.mid=([^&]+)/.exec(topic)?.[1];
          if (mid) c2dReceived.add(decodeURIComponent(mid));
        });
        await subscribe(client, "devices/crash-c2d/messages/devicebound/#", 1).catch(() => {});
        await closed;
      })();

      // The service: cloud-to-device messages over AMQP, each recorded once accepted.
      const sending = (async () => {
        const connection = await serviceConnection(h).catch(() => undefined);
        if (!connection) return;
        const sender = connection.open_sender({ target: { address: "/messages/devicebound" } });
        sender.on("accepted", (ctx: EventContext) => {
          const id = (ctx.delivery as unknown as { tag_id?: string }).tag_id;
          if (id) c2dAccepted.add(id);
        });
        sender.on("sender_error", () => {});
        let n = 0;
        while (running && connection.is_open()) {
          if (sender.sendable()) {
            n++;
            const id = `c-${round}-${n}`;
            const delivery = sender.send({
              to: "/devices/crash-c2d/messages/devicebound",
              message_id: id,
              body: id,
            });
            (delivery as unknown as { tag_id: string }).tag_id = id;
          }
          await sleep(5);
        }
        connection.close();
      })();

      await sleep(300 + Math.floor(random() * 1200));
      const exit = await h.kill("SIGKILL");
      expect(exit.signal).toBe("SIGKILL");
      running = false;
      await Promise.all([telemetry, receiving, sending]);
    }
    check();
    // One more start: the device takes what the last rounds left queued, so every accepted message arrives.
    const last = await spawnHub(dataDir, envFile);
    hub = last;
    const login = await mqttLogin(last, "crash-c2d", deviceToken(last, "crash-c2d", key), { clean: false });
    expect(login.ok).toBe(true);
    if (login.ok) {
      login.client.on("message", (topic) => {
        const mid = /%24\.mid=([^&]+)/.exec(topic)?.[1];
        if (mid) c2dReceived.add(decodeURIComponent(mid));
      });
      const until = Date.now() + 30_000;
      while ([...c2dAccepted].some((id) => !c2dReceived.has(id)) && Date.now() < until) await sleep(50);
      login.client.end(true);
    }
    expect([...c2dAccepted].filter((id) => !c2dReceived.has(id))).toEqual([]);
    expect((await last.kill("SIGTERM")).code).toBe(0);
    expect(telemetryAcked.size).toBeGreaterThan(ROUNDS);
    expect(c2dAccepted.size).toBeGreaterThan(ROUNDS);
    console.log(
      `[reliability] message crash safety: ${ROUNDS} SIGKILLs, ${telemetryAcked.size} PUBACK'd telemetry messages and ` +
        `${c2dAccepted.size} accepted cloud-to-device messages (${c2dReceived.size} received) all kept`,
    );
  }, 240_000);
});
