import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mqttPacket as P, rawMqtt } from "../hub/mqtt-raw.js";
import { connectDevice, getDeviceTwin } from "../hub/support.js";
import { deviceToken, type HubProcess, rest, serviceToken, sleep, spawnHub } from "./support.js";

/**
 * What one device can make the hub hold, measured on the hub's own process (the built `local-hub`, so its
 * resident memory is its own): a device that floods twin GETs and never reads the answers, and a device that
 * sends thousands of retained messages. Bounds stated in MB of resident memory growth over the hub's
 * baseline; before these limits, 1.9 MB of GETs made the hub hold 3.7 GB.
 */

const rssMb = (pid: number) => {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0; // the hub is gone; the test's other checks say why
  }
};

/** Flood bound: several MB of answers queued per connection at most, plus the hub's own churn. */
const FLOOD_GROWTH_MB = 150;
/** 20,000 retained 12 KB messages are 240 MB if kept; kept nowhere, the hub grows by far less. */
const RETAIN_GROWTH_MB = 100;

describe("per-device memory bounds on the MQTT side (hub as a child process)", () => {
  const dir = mkdtempSync(join(tmpdir(), "mqtt-memory-"));
  let hub: HubProcess;
  let owner: string;
  const keys = new Map<string, string>();

  beforeAll(async () => {
    hub = await spawnHub(join(dir, "data"), join(dir, "hub.env"));
    owner = serviceToken(hub);
    for (const id of ["flooder", "retainer", "deaf"]) {
      const res = await rest(hub, "PUT", `/devices/${id}`, {
        auth: owner,
        body: JSON.stringify({ deviceId: id }),
      });
      keys.set(
        id,
        res.json<{ authentication: { symmetricKey: { primaryKey: string } } }>().authentication.symmetricKey
          .primaryKey,
      );
    }
  }, 60_000);
  afterAll(async () => {
    await hub?.kill();
    rmSync(dir, { recursive: true, force: true });
  });

  const login = (id: string) =>
    P.connect(id, `${hub.hostName}/${id}/?api-version=2021-04-12`, deviceToken(hub, id, keys.get(id)!));

  it(`a device flooding twin GETs without reading is cut off; the hub grows < ${FLOOD_GROWTH_MB} MB and keeps serving an SDK device`, async () => {
    // A large twin makes each answer ~28 KB, so unread answers pile up fast.
    // Strings are limited to 4 KB each: seven of them make a ~28 KB desired section.
    const big = Object.fromEntries(Array.from({ length: 7 }, (_, i) => [`p${i}`, "x".repeat(4000)]));
    expect(
      (
        await rest(hub, "PATCH", "/twins/flooder", {
          auth: owner,
          body: JSON.stringify({ properties: { desired: big } }),
          headers: { "if-match": "*" },
        })
      ).status,
    ).toBe(200);
    const sdk = await connectDevice(hub.env.IOTHUB_DEVICE_CONNECTION_STRING, hub.caPem);
    await getDeviceTwin(sdk);
    await sleep(500);
    const baseline = rssMb(hub.pid);
    let peak = baseline;
    const sampler = setInterval(() => {
      peak = Math.max(peak, rssMb(hub.pid));
    }, 50);

    const flooder = await rawMqtt(hub.port, hub.caPem, { read: false });
    flooder.write(login("flooder"), P.subscribe(1, [["$iothub/twin/res/#", 0]]));
    const gets = Buffer.concat(
      Array.from({ length: 1000 }, (_, i) => P.publish(`$iothub/twin/GET/?$rid=${i}`, "")),
    );
    let sent = 0;
    // Meanwhile the SDK device asks for its twin again and again; every answer must come.
    let served = 0;
    const sdkLoop = (async () => {
      while (!flooder.closed) {
        await getDeviceTwin(sdk);
        served++;
        await sleep(100);
      }
    })();
    // 100,000 GETs (~3.7 MB) unless the hub cuts the connection first.
    for (let i = 0; i < 100 && !flooder.closed; i++) {
      if (!flooder.socket.write(gets))
        await Promise.race([new Promise((r) => flooder.socket.once("drain", r)), sleep(2000)]);
      sent += 1000;
    }
    await flooder.waitClosed(30_000);
    await sdkLoop;
    clearInterval(sampler);
    const growth = peak - baseline;
    console.log(
      `[reliability] twin GET flood: ${sent} GETs written by the client before it saw the hub cut the connection, hub RSS ${baseline.toFixed(0)} MB -> peak ${peak.toFixed(0)} MB (+${growth.toFixed(0)} MB, bound ${FLOOD_GROWTH_MB}); SDK twin reads served meanwhile: ${served}`,
    );
    expect(flooder.closed).toBe(true);
    expect(growth).toBeLessThan(FLOOD_GROWTH_MB);
    expect(served).toBeGreaterThan(0);
    // Still serving afterwards.
    expect((await getDeviceTwin(sdk)).properties.reported).toBeDefined();
    await sdk.close();
  }, 120_000);

  it("a device that never reads is cut off when desired updates pile up for it", async () => {
    const deaf = await rawMqtt(hub.port, hub.caPem, { read: false });
    deaf.write(login("deaf"), P.subscribe(1, [["$iothub/twin/PATCH/properties/desired/#", 0]]));
    await sleep(300);
    const baseline = rssMb(hub.pid);
    let updates = 0;
    // Each update carries ~28 KB; kernel buffers take the first few MB, then the hub's 1 MiB bound applies.
    const connected = async () =>
      (await rest(hub, "GET", "/twins/deaf", { auth: owner })).json<{ connectionState: string }>()
        .connectionState === "Connected";
    for (let i = 0; i < 1000 && (i % 20 !== 0 || (await connected())); i++) {
      const desired = Object.fromEntries(
        Array.from({ length: 7 }, (_, k) => [`p${k}`, `${i}`.padEnd(4000, "x")]),
      );
      const res = await rest(hub, "PATCH", "/twins/deaf", {
        auth: owner,
        body: JSON.stringify({ properties: { desired } }),
        headers: { "if-match": "*" },
      });
      expect(res.status).toBe(200);
      updates++;
    }
    // The client never reads, so it may not notice the close; the hub's own view is what counts.
    const state = async () =>
      (await rest(hub, "GET", "/twins/deaf", { auth: owner })).json<{ connectionState: string }>()
        .connectionState;
    for (let i = 0; i < 200 && (await state()) !== "Disconnected"; i++) await sleep(50);
    const growth = rssMb(hub.pid) - baseline;
    console.log(
      `[reliability] desired updates to a device that never reads: cut off after ${updates} updates of ~28 KB; hub RSS +${growth.toFixed(0)} MB`,
    );
    expect(await state()).toBe("Disconnected");
    expect(updates).toBeLessThan(1000);
    expect(growth).toBeLessThan(FLOOD_GROWTH_MB);
    deaf.end();
  }, 120_000);

  it(`20,000 retained 12 KB telemetry messages are kept nowhere: the hub grows < ${RETAIN_GROWTH_MB} MB`, async () => {
    const c = await rawMqtt(hub.port, hub.caPem);
    c.write(login("retainer"));
    await c.waitFor((r) => r.some((p) => p.type === "connack"));
    const baseline = rssMb(hub.pid);
    let peak = baseline;
    const payload = Buffer.alloc(12 * 1024, 0x61);
    for (let batch = 0; batch < 20; batch++) {
      const packets = Array.from({ length: 1000 }, (_, i) =>
        P.publish(`devices/retainer/messages/events/n=${batch * 1000 + i}`, payload, { retain: true }),
      );
      if (!c.socket.write(Buffer.concat(packets))) await new Promise((r) => c.socket.once("drain", r));
      peak = Math.max(peak, rssMb(hub.pid));
    }
    // A QoS 1 marker: its PUBACK comes after every earlier publish was handled.
    c.write(P.publish("devices/retainer/messages/events/", "end", { qos: 1, messageId: 9 }));
    await c.waitFor((r) => r.some((p) => p.type === "puback"), 60_000);
    await sleep(500);
    peak = Math.max(peak, rssMb(hub.pid));
    const growth = peak - baseline;
    console.log(
      `[reliability] 20,000 retained 12 KB publishes (240 MB): hub RSS ${baseline.toFixed(0)} MB -> peak ${peak.toFixed(0)} MB (+${growth.toFixed(0)} MB, bound ${RETAIN_GROWTH_MB})`,
    );
    expect(c.closed).toBe(false);
    expect(growth).toBeLessThan(RETAIN_GROWTH_MB);
    c.end();
  }, 120_000);
});
