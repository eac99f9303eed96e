import { afterEach, describe, expect, it } from "vitest";
import { TUTORIAL_DEVICE } from "../../../src/hub/auth/credentials.js";
import type { HubOptions } from "../../../src/hub/index.js";
import { TokenBucket } from "../../../src/hub/throttle/bucket.js";
import { createThrottle, type ThrottleLimits } from "../../../src/hub/throttle/index.js";
import { deviceToken, mqttLogin, rest, serviceToken, subscribe } from "../../reliability/support.js";
import { connectDevice, registryFor, sdkErrorOf, startTestHub } from "../support.js";

describe("token bucket", () => {
  it("passes a burst up to its capacity, then refills at its rate", () => {
    let now = 0;
    const bucket = new TokenBucket(2, 5, () => now);
    for (let i = 0; i < 5; i++) expect(bucket.take()).toBe(true);
    expect(bucket.take()).toBe(false);
    expect(bucket.secondsUntil()).toBeCloseTo(0.5);
    now += 499;
    expect(bucket.take()).toBe(false);
    now += 1;
    expect(bucket.take()).toBe(true);
    now += 60_000; // refills to capacity, not beyond
    for (let i = 0; i < 5; i++) expect(bucket.take()).toBe(true);
    expect(bucket.take()).toBe(false);
    expect(bucket.take(0)).toBe(true);
  });
});

describe("tier figures", () => {
  it("S1 allows 20 queries a minute, then one every 3 s", () => {
    let now = 0;
    const t = createThrottle({ limits: "S1", now: () => now });
    for (let i = 0; i < 20; i++) expect(t.allow("query")).toBe(true);
    expect(t.allow("query")).toBe(false);
    now += 2900;
    expect(t.allow("query")).toBe(false);
    now += 100;
    expect(t.allow("query")).toBe(true);
  });

  it("S1 twin reads run at 100/s, S3 at 500/s; a minute's allowance passes as a burst", () => {
    let now = 0;
    const s1 = createThrottle({ limits: "S1", now: () => now });
    const s3 = createThrottle({ limits: "S3", now: () => now });
    let n1 = 0;
    let n3 = 0;
    while (s1.allow("twinRead")) n1++;
    while (s3.allow("twinRead")) n3++;
    expect(n1).toBe(6000);
    expect(n3).toBe(30_000);
    now += 1000;
    n1 = 0;
    while (s1.allow("twinRead")) n1++;
    expect(n1).toBe(100);
  });

  it("bulk registry operations cost one per device", () => {
    const t = createThrottle({ limits: "S1", now: () => 0 });
    expect(t.allow("registry", 60)).toBe(true);
    expect(t.allow("registry", 50)).toBe(false); // 40 left
    expect(t.allow("registry", 40)).toBe(true);
  });
});

/** Tiny limits so a test reaches them in a few calls: N per minute (a bucket of N). */
function limits(overrides: Partial<Record<keyof ThrottleLimits, number>>): ThrottleLimits {
  const rate = (n: number | undefined) => ({ count: n ?? 1_000_000, perSeconds: 60 });
  return {
    registry: rate(overrides.registry),
    connect: rate(overrides.connect),
    query: rate(overrides.query),
    twinRead: rate(overrides.twinRead),
    twinUpdate: rate(overrides.twinUpdate),
  };
}

describe("a throttled hub", () => {
  const hubs: Array<{ cleanup(): Promise<void> }> = [];
  const start = async (options: HubOptions) => {
    const hub = await startTestHub({ inMemory: true, ...options });
    hubs.push(hub);
    return hub;
  };
  afterEach(async () => {
    await Promise.all(hubs.splice(0).map((h) => h.cleanup()));
  });

  it("answers REST calls over quota with 429 ThrottlingException, which the SDK raises as ThrottlingError", async () => {
    const hub = await start({ throttle: limits({ twinRead: 2, query: 1 }) });
    const registry = registryFor(hub.serviceConnectionString, hub.caPem);
    const id = TUTORIAL_DEVICE.deviceId;
    await registry.getTwin(id);
    await registry.getTwin(id);
    expect(await sdkErrorOf(registry.getTwin(id))).toBe("ThrottlingError");

    const raw = await rest(hub, "GET", `/twins/${id}`, { auth: serviceToken(hub) });
    expect(raw.status).toBe(429);
    expect(raw.json().Message).toMatch(
      /^ErrorCode:ThrottlingException;Twin reads are over the custom tier's throttle/,
    );

    // Other classes have their own allowance; statistics are in no class.
    await registry.updateTwin(id, { tags: { a: 1 } }, "*");
    await registry.getRegistryStatistics();
    await registry.createQuery("SELECT * FROM devices").nextAsTwin();
    expect(await sdkErrorOf(registry.createQuery("SELECT * FROM devices").nextAsTwin())).toBe(
      "ThrottlingError",
    );
  });

  it("counts a bulk registry update as one operation per device", async () => {
    const hub = await start({ throttle: limits({ registry: 3 }) });
    const registry = registryFor(hub.serviceConnectionString, hub.caPem);
    const devices = (n: number, p: string) => Array.from({ length: n }, (_, i) => ({ deviceId: `${p}${i}` }));
    expect(await sdkErrorOf(registry.addDevices(devices(4, "a")))).toBe("ThrottlingError");
    await registry.addDevices(devices(3, "b"));
    expect(await sdkErrorOf(registry.get("b0"))).toBe("ThrottlingError");
  });

  it("answers twin requests over MQTT over quota with 429 and errorCode 429001 on the response topic", async () => {
    const hub = await start({ throttle: limits({ twinRead: 2, twinUpdate: 1 }) });
    const id = TUTORIAL_DEVICE.deviceId;
    const login = await mqttLogin(hub, id, deviceToken(hub, id, TUTORIAL_DEVICE.primaryKey));
    if (!login.ok) throw new Error(login.reason);
    const client = login.client;
    try {
      await subscribe(client, "$iothub/twin/res/#");
      const responses: Array<{ topic: string; body: string }> = [];
      client.on("message", (topic, payload) => responses.push({ topic, body: payload.toString() }));
      for (const rid of ["1", "2", "3"]) client.publish(`$iothub/twin/GET/?$rid=${rid}`, "");
      client.publish("$iothub/twin/PATCH/properties/reported/?$rid=4", JSON.stringify({ a: 1 }));
      client.publish("$iothub/twin/PATCH/properties/reported/?$rid=5", JSON.stringify({ a: 2 }));
      const deadline = Date.now() + 10_000;
      while (responses.length < 5 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      const byRid = (rid: string) => responses.find((r) => r.topic.includes(`$rid=${rid}`));
      expect(byRid("1")?.topic).toMatch(/^\$iothub\/twin\/res\/200\//);
      expect(byRid("2")?.topic).toMatch(/^\$iothub\/twin\/res\/200\//);
      expect(byRid("3")?.topic).toBe("$iothub/twin/res/429/?$rid=3");
      expect(JSON.parse(byRid("3")!.body)).toMatchObject({
        errorCode: 429001,
        message: expect.stringMatching(/Twin reads/),
      });
      expect(byRid("4")?.topic).toMatch(/^\$iothub\/twin\/res\/204\//);
      expect(byRid("5")?.topic).toBe("$iothub/twin/res/429/?$rid=5");
      expect(JSON.parse(byRid("5")!.body).errorCode).toBe(429001);
    } finally {
      client.end(true);
    }
  });

  it("makes the device SDK's getTwin fail when its twin read is throttled", async () => {
    const hub = await start({ throttle: limits({ twinRead: 1 }) });
    const device = await connectDevice(hub.deviceConnectionString(), hub.caPem);
    try {
      await device.getTwin();
      await expect(device.getTwin()).rejects.toThrow(/Twin reads are over/);
    } finally {
      await device.close();
    }
  }, 30_000);

  it("refuses MQTT connections over the new-connections quota with CONNACK 3 (server unavailable)", async () => {
    const hub = await start({ throttle: limits({ connect: 2 }) });
    const id = TUTORIAL_DEVICE.deviceId;
    const token = deviceToken(hub, id, TUTORIAL_DEVICE.primaryKey);
    for (let i = 0; i < 2; i++) {
      const ok = await mqttLogin(hub, id, token);
      if (!ok.ok) throw new Error(ok.reason);
      ok.client.end(true);
    }
    const refused = await mqttLogin(hub, id, token);
    expect(refused.ok).toBe(false);
    if (!refused.ok) expect(refused.returnCode).toBe(3);
  });

  it("rejects an unknown tier at start", async () => {
    await expect(start({ throttle: "S9" as "S1" })).rejects.toThrow(
      /unknown throttle tier "S9": use one of F1, S1, S2, S3/,
    );
  });
});
