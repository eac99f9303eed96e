import { request } from "node:https";
import type { Registry } from "azure-iothub";
import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { closed, deviceToken, serviceToken, sleep } from "../../reliability/support.js";
import { mqttPacket as P, rawMqtt } from "../mqtt-raw.js";
import { eventually, registryFor, serviceClientFor, startTestHub } from "../support.js";
import {
  answer,
  type Hub,
  invokeRaw,
  methodError,
  newDevice,
  noPendingMethods,
  rawDevice,
  receiveMethods,
} from "./support.js";

describe("direct methods: answers reach their own caller only (raw MQTT devices)", () => {
  let hub: Hub;
  let registry: Registry;
  const lines: string[] = [];
  const raws: MqttClient[] = [];
  const device = async (deviceId: string, extra = {}) => {
    const { key } = await newDevice(hub, registry, deviceId);
    const client = await rawDevice(hub, deviceId, key, extra);
    raws.push(client);
    return { key, client };
  };

  beforeAll(async () => {
    hub = await startTestHub({ inMemory: true, quiet: false, log: (line) => lines.push(line) });
    registry = registryFor(hub.serviceConnectionString, hub.caPem);
  });
  afterAll(async () => {
    for (const c of raws) c.end(true);
    await hub?.cleanup();
  });

  it("an answer to a request ID the device never got, or to another device's, is ignored; the caller gets its own", async () => {
    const a = await device("r-a");
    const b = await device("r-b");
    const aRequests = await receiveMethods(a.client);
    const bRequests = await receiveMethods(b.client);
    const callA = invokeRaw(hub, "r-a", {
      methodName: "who",
      payload: "for a",
      responseTimeoutInSeconds: 30,
    });
    const callB = invokeRaw(hub, "r-b", {
      methodName: "who",
      payload: "for b",
      responseTimeoutInSeconds: 30,
    });
    await eventually(() => (aRequests.length === 1 && bRequests.length === 1 ? true : undefined));
    const ridA = aRequests[0].rid;
    const ridB = bRequests[0].rid;
    expect(ridA).not.toBe(ridB);
    expect(aRequests[0].payload).toBe('"for a"');
    // Device b answers a's request ID, and a request ID nobody sent; a answers an invented one.
    await answer(b.client, 200, ridA, '"b stole a\'s call"');
    await answer(b.client, 200, "deadbeef", '"invented"');
    await answer(a.client, 200, `${ridA}0`, '"near miss"');
    // A malformed answer topic is ignored as well; the connection stays.
    await answer(a.client, Number.NaN, ridA, '"bad status"');
    await sleep(300);
    expect(a.client.connected && b.client.connected).toBe(true);
    // Now each answers its own: each caller gets exactly its device's answer.
    await answer(a.client, 200, ridA, '"a answers"');
    await answer(b.client, 201, ridB, '"b answers"');
    const [resA, resB] = await Promise.all([callA, callB]);
    expect([resA.status, resA.json()]).toEqual([200, { status: 200, payload: "a answers" }]);
    expect([resB.status, resB.json()]).toEqual([200, { status: 201, payload: "b answers" }]);
    // Answering again after the call completed finds nothing either.
    await answer(a.client, 200, ridA, '"twice"');
    await eventually(() =>
      lines.filter((l) => l.includes("method response ignored")).length >= 5 ? true : undefined,
    );
    expect(lines.some((l) => l.includes("MQTT r-b method response ignored") && l.includes(ridA))).toBe(true);
    await noPendingMethods(hub);
  });

  it("a SUBSCRIBE sent in the same write as CONNECT (before CONNACK) counts: methods arrive", async () => {
    const { key } = await newDevice(hub, registry, "r-early");
    const raw = await rawMqtt(hub.port, hub.caPem);
    try {
      raw.write(
        P.connect(
          "r-early",
          `${hub.hostName}/r-early/?api-version=2021-04-12`,
          deviceToken(hub, "r-early", key),
        ),
        P.subscribe(1, [["$iothub/methods/POST/#", 0]]),
      );
      await raw.waitFor((r) => r.some((p) => p.type === "suback"));
      const call = invokeRaw(hub, "r-early", { methodName: "early", payload: 1 });
      await raw.waitFor((r) => r.some((p) => p.type === "publish"));
      const request = raw.received.find((p) => p.type === "publish")!;
      expect(request.topic).toMatch(/^\$iothub\/methods\/POST\/early\/\?\$rid=[0-9a-f]+$/);
      const rid = request.topic!.split("$rid=")[1];
      raw.write(P.publish(`$iothub/methods/res/200/?$rid=${rid}`, '"early answer"'));
      expect((await call).json()).toEqual({ status: 200, payload: "early answer" });
    } finally {
      raw.end();
    }
  });

  it("100 concurrent callers on each of 10 devices: every answer reaches its own caller", async () => {
    const service = serviceClientFor(hub.serviceConnectionString, hub.caPem, { maxSockets: 200 });
    try {
      const ids = Array.from({ length: 10 }, (_, i) => `r-many-${i}`);
      for (const id of ids) {
        const { client } = await device(id);
        const requests = await receiveMethods(client);
        // Each device answers what has arrived in reverse order every 20 ms, echoing the payload: answers
        // come back out of order, and each must still find its own caller.
        const timer = setInterval(() => {
          const batch = requests.splice(0).reverse();
          for (const r of batch)
            void answer(client, 200, r.rid, JSON.stringify({ device: id, echo: JSON.parse(r.payload) }));
        }, 20);
        client.once("close", () => clearInterval(timer));
      }
      const calls = ids.flatMap((id) =>
        Array.from({ length: 100 }, (_, n) =>
          service.client
            .invokeDeviceMethod(id, {
              methodName: "echo",
              payload: { caller: n, to: id },
              responseTimeoutInSeconds: 120,
            })
            .then(({ result }) => ({ id, n, result })),
        ),
      );
      // How many calls the hub held at once: the routing below was exercised with many in flight per device.
      let most = 0;
      const watch = setInterval(() => {
        most = Math.max(most, hub.pendingMethods);
      }, 5);
      const results = await Promise.all(calls).finally(() => clearInterval(watch));
      expect(results).toHaveLength(1000);
      expect(most).toBeGreaterThanOrEqual(50);
      for (const { id, n, result } of results)
        expect(result).toEqual({ status: 200, payload: { device: id, echo: { caller: n, to: id } } });
      await noPendingMethods(hub);
    } finally {
      service.close();
    }
  }, 120_000);

  it("the device disconnects while a call waits: 503 DeviceUnavailable (503102) at once", async () => {
    const d = await device("r-drop");
    const requests = await receiveMethods(d.client);
    const started = Date.now();
    const call = invokeRaw(hub, "r-drop", { methodName: "slow", responseTimeoutInSeconds: 60 });
    await eventually(() => (requests.length === 1 ? true : undefined));
    d.client.end(true);
    const res = await call;
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(res.status).toBe(503);
    expect(res.headers["iothub-errorcode"]).toBe("DeviceUnavailable");
    expect(methodError(res).errorCode).toBe(503102);
    await noPendingMethods(hub);
  });

  it("a caller that goes away abandons its call: the hub stops holding it; the late answer is ignored", async () => {
    const d = await device("r-abandon");
    const requests = await receiveMethods(d.client);
    // Two calls: one already sent to the device, one waiting for another device to come online.
    await newDevice(hub, registry, "r-abandon-offline");
    const open = (id: string, body: unknown) => {
      const req = request({
        host: "localhost",
        port: hub.port,
        ca: hub.caPem,
        agent: false,
        method: "POST",
        path: `/twins/${id}/methods?api-version=2021-04-12`,
        headers: { authorization: serviceToken(hub), "content-type": "application/json" },
      });
      req.on("error", () => {});
      req.end(JSON.stringify(body));
      return req;
    };
    const sent = open("r-abandon", { methodName: "slow", responseTimeoutInSeconds: 300 });
    const waiting = open("r-abandon-offline", { methodName: "slow", connectTimeoutInSeconds: 300 });
    await eventually(() => (requests.length === 1 && hub.pendingMethods === 2 ? true : undefined));
    sent.destroy();
    waiting.destroy();
    await noPendingMethods(hub);
    const before = lines.filter((l) => l.includes("MQTT r-abandon method response ignored")).length;
    await answer(d.client, 200, requests[0].rid, '"too late"');
    await eventually(() =>
      lines.filter((l) => l.includes("MQTT r-abandon method response ignored")).length > before
        ? true
        : undefined,
    );
    expect(d.client.connected).toBe(true);
  });

  it("another connection with the same identity takes over: 400 ConnectionForcefullyClosedOnNewConnection (400027)", async () => {
    const d = await device("r-twice");
    const requests = await receiveMethods(d.client);
    const call = invokeRaw(hub, "r-twice", { methodName: "slow", responseTimeoutInSeconds: 60 });
    await eventually(() => (requests.length === 1 ? true : undefined));
    const second = await rawDevice(hub, "r-twice", d.key);
    raws.push(second);
    const res = await call;
    expect(res.status).toBe(400);
    expect(res.headers["iothub-errorcode"]).toBe("ConnectionForcefullyClosedOnNewConnection");
    expect(methodError(res).errorCode).toBe(400027);
    await noPendingMethods(hub);
  });

  it("a persistent session keeps its methods subscription across reconnects; a clean one does not; UNSUBSCRIBE ends it", async () => {
    const d = await device("r-session", { clean: false });
    await receiveMethods(d.client);
    d.client.end(true);
    await closed(d.client);
    // Reconnect with the same persistent session and no SUBSCRIBE: methods still arrive.
    const again = await rawDevice(hub, "r-session", d.key, { clean: false });
    raws.push(again);
    const seen: string[] = [];
    again.on("message", (topic) => {
      const rid = /\?\$rid=(.+)$/.exec(topic)?.[1];
      if (rid) {
        seen.push(topic);
        void answer(again, 200, rid, '"still here"');
      }
    });
    const res = await invokeRaw(hub, "r-session", { methodName: "ping" });
    expect([res.status, res.json()]).toEqual([200, { status: 200, payload: "still here" }]);
    expect(seen).toHaveLength(1);
    // UNSUBSCRIBE: the device is connected but no longer online for methods.
    await new Promise<void>((r) => again.unsubscribe("$iothub/methods/POST/#", () => r()));
    const off = await invokeRaw(hub, "r-session", { methodName: "ping" });
    expect([off.status, off.headers["iothub-errorcode"]]).toEqual([404, "DeviceNotOnline"]);
    again.end(true);
    await closed(again);
    // A clean session starts with no subscriptions.
    const c = await device("r-clean", { clean: true });
    await receiveMethods(c.client);
    c.client.end(true);
    await closed(c.client);
    const fresh = await rawDevice(hub, "r-clean", c.key, { clean: true });
    raws.push(fresh);
    const none = await invokeRaw(hub, "r-clean", { methodName: "ping" });
    expect([none.status, none.headers["iothub-errorcode"]]).toEqual([404, "DeviceNotOnline"]);
  });
});

describe("direct methods: bounds, and a hub that stops", () => {
  let hub: Hub;
  let registry: Registry;
  const raws: MqttClient[] = [];

  beforeAll(async () => {
    hub = await startTestHub({ inMemory: true });
    registry = registryFor(hub.serviceConnectionString, hub.caPem);
  });
  afterAll(async () => {
    for (const c of raws) c.end(true);
    await hub?.cleanup();
  });

  it("over 100 calls in flight to one device: 403 DeviceMaximumInflightMethodExceeded; stop answers the rest at once", async () => {
    const { key } = await newDevice(hub, registry, "cap");
    const client = await rawDevice(hub, "cap", key);
    raws.push(client);
    const requests = await receiveMethods(client);
    const calls = Array.from({ length: 100 }, () =>
      invokeRaw(hub, "cap", { methodName: "hold", responseTimeoutInSeconds: 300 }),
    );
    await eventually(() => (requests.length === 100 ? true : undefined), 60_000);
    expect(hub.pendingMethods).toBe(100);
    const over = await invokeRaw(hub, "cap", { methodName: "hold" });
    expect(over.status).toBe(403);
    expect(over.headers["iothub-errorcode"]).toBe("DeviceMaximumInflightMethodExceeded");
    expect(methodError(over).errorCode).toBe(403800);
    // A call waiting for another device to come online is answered on stop as well.
    await newDevice(hub, registry, "cap-offline");
    const waiting = invokeRaw(hub, "cap-offline", { methodName: "hold", connectTimeoutInSeconds: 300 });
    await eventually(() => (hub.pendingMethods === 101 ? true : undefined));
    const started = Date.now();
    await hub.stop();
    const answers = await Promise.all([...calls, waiting]);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(new Set(answers.map((a) => `${a.status} ${a.headers["iothub-errorcode"]}`))).toEqual(
      new Set(["503 ServiceUnavailable"]),
    );
    expect(hub.pendingMethods).toBe(0);
  }, 120_000);
});
