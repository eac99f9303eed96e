import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deliveryOf, isDownstream } from "../../src/hub/mqtt/topics.js";
import { closed, deviceToken, mqttLogin, nowSeconds, rest, serviceToken } from "../reliability/support.js";
import { mqttPacket as P, type RawClient, rawMqtt } from "./mqtt-raw.js";
import { connectDevice, getDeviceTwin, startTestHub } from "./support.js";

/**
 * The MQTT rules of "Communicate with an IoT hub using the MQTT protocol" and MQTT 3.1.1 that the SDKs never
 * exercise, through raw TLS sockets and mqtt.js against a real hub.
 */

type Hub = Awaited<ReturnType<typeof startTestHub>>;

describe("MQTT protocol details, raw clients against a real hub", () => {
  let hub: Hub;
  let owner: string;
  const keys = new Map<string, string>();
  const raws: RawClient[] = [];

  const make = async (id: string) => {
    const res = await rest(hub, "PUT", `/devices/${encodeURIComponent(id)}`, {
      auth: owner,
      body: JSON.stringify({ deviceId: id }),
    });
    expect(res.status).toBe(200);
    const key = res.json<{ authentication: { symmetricKey: { primaryKey: string } } }>().authentication
      .symmetricKey.primaryKey;
    keys.set(id, key);
    return key;
  };
  const connectPacket = (id: string, token = deviceToken(hub, id, keys.get(id)!), clean = true) =>
    P.connect(id, `${hub.hostName}/${id}/?api-version=2021-04-12`, token, clean);
  const raw = async (opts: { read?: boolean } = {}) => {
    const c = await rawMqtt(hub.port, hub.caPem, opts);
    raws.push(c);
    return c;
  };
  const twinOf = async (id: string) =>
    (await rest(hub, "GET", `/twins/${encodeURIComponent(id)}`, { auth: owner })).json<{
      properties: { reported: { $version: number } & Record<string, unknown> };
      connectionState: string;
    }>();

  beforeAll(async () => {
    hub = await startTestHub();
    owner = serviceToken(hub);
    for (const id of ["dev-early", "dev-qos", "dev-subs", "dev-ret", "dev-exp", "dev-x", "+"]) await make(id);
  });
  afterAll(async () => {
    for (const c of raws) c.end();
    await hub.cleanup();
  });

  describe("packets sent right after CONNECT, before CONNACK (MQTT 3.1.1 §3.1.4)", () => {
    const afterConnect = (rid: string, messageId: number) => [
      P.subscribe(1, [["$iothub/twin/res/#", 0]]),
      P.publish(`$iothub/twin/GET/?$rid=${rid}`, ""),
      P.publish("devices/dev-early/messages/events/", "{}", { qos: 1, messageId }),
    ];
    const expectServedInOrder = async (c: RawClient, rid: string, messageId: number) => {
      await c.waitFor((r) => r.some((p) => p.type === "publish") && r.some((p) => p.type === "puback"));
      // CONNACK first, then the SUBACK, then the twin answer and the PUBACK, as dev-early (not as "null"). The last
      // two answer different kinds of request (a twin GET, a stored telemetry message), which IoT Hub does not order.
      expect(c.received[0]).toEqual({ type: "connack", codes: [0] });
      const kinds = c.received.map((p) => p.type);
      expect(kinds.slice(0, 2)).toEqual(["connack", "suback"]);
      expect(kinds.slice(2, 4).sort()).toEqual(["puback", "publish"]);
      expect(c.received.find((p) => p.type === "puback")!.codes).toEqual([messageId]);
      const answer = c.received.find((p) => p.type === "publish")!;
      expect(answer.topic).toBe(`$iothub/twin/res/200/?$rid=${rid}`);
      expect(JSON.parse(answer.payload!.toString())).toHaveProperty("reported.$version");
      expect(c.closed).toBe(false);
    };

    it("handles CONNECT+SUBSCRIBE+PUBLISH in one TLS write after the login, in order", async () => {
      const c = await raw();
      c.write(connectPacket("dev-early"), ...afterConnect("one-write", 7));
      await expectServedInOrder(c, "one-write", 7);
      c.end();
    });

    it("handles them when the packets after CONNECT come in the next TLS write", async () => {
      for (const gap of ["same turn", "next turn"]) {
        const c = await raw();
        c.write(connectPacket("dev-early"));
        if (gap === "next turn") await new Promise((r) => setImmediate(r));
        c.write(...afterConnect(gap, 9));
        await expectServedInOrder(c, gap, 9);
        c.end();
        await c.waitClosed();
      }
    });

    it("serves 100 packets pipelined in the CONNECT's write (more than aedes' default queue of 42)", async () => {
      const c = await raw();
      const gets = Array.from({ length: 100 }, (_, i) => P.publish(`$iothub/twin/GET/?$rid=p${i}`, ""));
      c.write(connectPacket("dev-early"), P.subscribe(1, [["$iothub/twin/res/#", 0]]), ...gets);
      await c.waitFor((r) => r.filter((p) => p.type === "publish").length === 100);
      expect(c.received[0]).toEqual({ type: "connack", codes: [0] });
      expect(c.closed).toBe(false);
      c.end();
    });

    it("acts on none of them when the login is refused", async () => {
      const before = (await twinOf("dev-early")).properties.reported.$version;
      for (const split of [false, true]) {
        const c = await raw();
        const bad = connectPacket("dev-early", deviceToken(hub, "dev-early", keys.get("dev-x")!));
        const rest = [
          P.subscribe(1, [["$iothub/twin/res/#", 0]]),
          P.publish("$iothub/twin/PATCH/properties/reported/?$rid=1", JSON.stringify({ sneaked: true })),
          P.publish("devices/dev-early/messages/events/", "{}", { qos: 1, messageId: 3 }),
        ];
        if (split) {
          c.write(bad);
          c.write(...rest);
        } else c.write(bad, ...rest);
        await c.waitClosed();
        expect(c.received).toEqual([{ type: "connack", codes: [4] }]);
      }
      const after = await twinOf("dev-early");
      expect(after.properties.reported.$version).toBe(before);
      expect(after.properties.reported.sneaked).toBeUndefined();
    });
  });

  describe("QoS 2 and RETAIN", () => {
    it("closes the connection of a QoS 2 publish", async () => {
      const c = await raw();
      c.write(
        connectPacket("dev-qos"),
        P.publish("devices/dev-qos/messages/events/", "{}", { qos: 2, messageId: 5 }),
      );
      await c.waitClosed();
      expect(c.received.map((p) => p.type)).toEqual(["connack"]);
    });

    it("grants QoS 1 to a QoS 2 subscription (raw and mqtt.js)", async () => {
      const c = await raw();
      c.write(
        connectPacket("dev-qos"),
        P.subscribe(4, [
          ["$iothub/twin/res/#", 2],
          ["#", 2],
          ["$iothub/twin/GET/#", 2],
        ]),
      );
      await c.waitFor((r) => r.some((p) => p.type === "suback"));
      expect(c.received.find((p) => p.type === "suback")!.codes).toEqual([1, 1, 128]);
      c.end();
      const login = await mqttLogin(hub, "dev-qos", deviceToken(hub, "dev-qos", keys.get("dev-qos")!));
      if (!login.ok) throw new Error(login.reason);
      const granted = await new Promise<number[]>((resolve, reject) =>
        login.client.subscribe("$iothub/twin/PATCH/properties/desired/#", { qos: 2 }, (err, g) =>
          err ? reject(err) : resolve((g ?? []).map((x) => x.qos)),
        ),
      );
      expect(granted).toEqual([1]);
      login.client.end(true);
    });

    it("handles retained publishes like any other: twin requests answered, telemetry acknowledged", async () => {
      const c = await raw();
      c.write(
        connectPacket("dev-ret"),
        P.subscribe(1, [["$iothub/twin/res/#", 0]]),
        P.publish("$iothub/twin/PATCH/properties/reported/?$rid=r1", JSON.stringify({ a: 1 }), {
          retain: true,
        }),
        P.publish("$iothub/twin/GET/?$rid=r2", "", { retain: true }),
        P.publish("devices/dev-ret/messages/events/k=v", "{}", { qos: 1, retain: true, messageId: 2 }),
      );
      await c.waitFor(
        (r) => r.filter((p) => p.type === "publish").length === 2 && r.some((p) => p.type === "puback"),
      );
      const topics = c.received.filter((p) => p.type === "publish").map((p) => p.topic);
      expect(topics[0]).toMatch(/^\$iothub\/twin\/res\/204\/\?\$rid=r1&\$version=\d+$/);
      expect(topics[1]).toBe("$iothub/twin/res/200/?$rid=r2");
      // Nothing was retained: a new subscription to # gets nothing back.
      c.write(P.subscribe(2, [["#", 1]]));
      await c.waitFor((r) => r.filter((p) => p.type === "suback").length === 2);
      await new Promise((r) => setTimeout(r, 200));
      expect(c.received.filter((p) => p.type === "publish")).toHaveLength(2);
      expect(c.closed).toBe(false);
      c.end();
    });
  });

  describe("subscriptions", () => {
    it("answers one SUBACK code per filter, duplicates included (MQTT-3.8.4-5)", async () => {
      const c = await raw();
      c.write(
        connectPacket("dev-subs"),
        P.subscribe(11, [
          ["$iothub/twin/res/#", 0],
          ["$iothub/twin/res/#", 1],
          ["devices/dev-x/messages/devicebound/#", 0],
          ["#", 1],
          ["devices/dev-subs/messages/devicebound/#", 0],
          ["$iothub/twin/res/#", 0],
        ]),
        P.subscribe(12, [
          ["#", 0],
          ["#", 0],
        ]),
      );
      await c.waitFor((r) => r.filter((p) => p.type === "suback").length === 2);
      const acks = c.received.filter((p) => p.type === "suback").map((p) => p.codes);
      expect(acks).toEqual([
        [0, 1, 128, 1, 0, 0],
        [0, 0],
      ]);
      // The last duplicate wins (MQTT-3.8.4-3) and the subscription works: a GET is answered.
      c.write(P.publish("$iothub/twin/GET/?$rid=dup", ""));
      await c.waitFor((r) => r.some((p) => p.topic === "$iothub/twin/res/200/?$rid=dup"));
      c.end();
    });

    it("does not answer twin requests of a client that did not subscribe to $iothub/twin/res/#", async () => {
      const c = await raw();
      c.write(connectPacket("dev-subs"), P.publish("$iothub/twin/GET/?$rid=unheard", ""));
      await c.waitFor((r) => r.some((p) => p.type === "connack"));
      // Answers leave in request order: once the answer to the next request (after subscribing) is in,
      // the first one would have been too.
      c.write(P.subscribe(1, [["$iothub/twin/res/#", 0]]), P.publish("$iothub/twin/GET/?$rid=heard", ""));
      await c.waitFor((r) => r.some((p) => p.type === "publish"));
      expect(c.received.filter((p) => p.type === "publish").map((p) => p.topic)).toEqual([
        "$iothub/twin/res/200/?$rid=heard",
      ]);
      c.end();
    });

    it("the SDK, which subscribes first, keeps getting its twin", async () => {
      const client = await connectDevice(hub.deviceConnectionString("dev-subs"), hub.caPem);
      const twin = await getDeviceTwin(client);
      expect(typeof twin.properties.reported.$version).toBe("number");
      await client.close();
    });

    it("a device named '+' gets its own C2D filter literally, never other devices' traffic", async () => {
      expect(deliveryOf("+", "devices/+/messages/devicebound/#")).toBe("cloudToDevice");
      expect(deliveryOf("+", "devices/dev-x/messages/devicebound/#")).toBeUndefined();
      expect(isDownstream("+", "devices/dev-x/messages/devicebound/secret")).toBe(false);
      expect(isDownstream("#", "devices/dev-x/messages/devicebound/secret")).toBe(false);
      const plus = await raw();
      plus.write(
        connectPacket("+"),
        P.subscribe(1, [
          ["devices/+/messages/devicebound/#", 1],
          ["#", 1],
          ["$iothub/twin/res/#", 0],
          ["devices/dev-x/messages/devicebound/#", 1],
        ]),
      );
      await plus.waitFor((r) => r.some((p) => p.type === "suback"));
      expect(plus.received.find((p) => p.type === "suback")!.codes).toEqual([1, 1, 0, 128]);
      // dev-x's traffic: telemetry, its twin answers, a desired update.
      const x = await raw();
      x.write(
        connectPacket("dev-x"),
        P.subscribe(1, [
          ["$iothub/twin/res/#", 0],
          ["$iothub/twin/PATCH/properties/desired/#", 0],
        ]),
        P.publish("devices/dev-x/messages/events/", "{}", { qos: 1, messageId: 1 }),
        P.publish("$iothub/twin/GET/?$rid=x1", ""),
      );
      await x.waitFor((r) => r.some((p) => p.topic?.startsWith("$iothub/twin/res/200/?$rid=x1")));
      await rest(hub, "PATCH", "/twins/dev-x", {
        auth: owner,
        body: JSON.stringify({ properties: { desired: { only: "dev-x" } } }),
        headers: { "if-match": "*" },
      });
      await x.waitFor((r) => r.some((p) => p.topic?.startsWith("$iothub/twin/PATCH/properties/desired/")));
      // "+"'s own marker request proves its connection is served; nothing of dev-x reached it.
      plus.write(P.publish("$iothub/twin/GET/?$rid=plus", ""));
      await plus.waitFor((r) => r.some((p) => p.type === "publish"));
      expect(plus.received.filter((p) => p.type === "publish").map((p) => p.topic)).toEqual([
        "$iothub/twin/res/200/?$rid=plus",
      ]);
      plus.end();
      x.end();
    });
  });

  describe("per-device limits", () => {
    it("answers 429 to twin requests beyond 50 in flight, answers every request, keeps the connection", async () => {
      const c = await raw();
      const gets = Array.from({ length: 300 }, (_, i) => P.publish(`$iothub/twin/GET/?$rid=${i}`, ""));
      c.write(connectPacket("dev-subs"), P.subscribe(1, [["$iothub/twin/res/#", 0]]));
      await c.waitFor((r) => r.some((p) => p.type === "suback"));
      // One write: the hub reads all 300 in one batch, before any answer is written through.
      c.write(...gets);
      await c.waitFor((r) => r.filter((p) => p.type === "publish").length === 300);
      const statuses = c.received
        .filter((p) => p.type === "publish")
        .map((p) => /^\$iothub\/twin\/res\/(\d+)\/\?\$rid=(\d+)$/.exec(p.topic!)!);
      expect(new Set(statuses.map((m) => m[2])).size).toBe(300);
      const ok = statuses.filter((m) => m[1] === "200").length;
      const throttled = statuses.filter((m) => m[1] === "429").length;
      expect(ok + throttled).toBe(300);
      expect(ok).toBeGreaterThanOrEqual(50);
      expect(throttled).toBeGreaterThan(0);
      expect(c.closed).toBe(false);
      c.end();
    });
  });

  describe("SAS token lifetime", () => {
    it("closes the connection when the token it logged in with expires", async () => {
      const expiry = nowSeconds() + 3;
      const login = await mqttLogin(
        hub,
        "dev-exp",
        deviceToken(hub, "dev-exp", keys.get("dev-exp")!, expiry),
      );
      if (!login.ok) throw new Error(login.reason);
      expect((await twinOf("dev-exp")).connectionState).toBe("Connected");
      const gone = closed(login.client);
      await gone;
      // Closed by the hub, at or after the expiry (seconds resolution), not before.
      expect(Date.now()).toBeGreaterThanOrEqual(expiry * 1000 - 1000);
      expect((await twinOf("dev-exp")).connectionState).toBe("Disconnected");
      login.client.end(true);
    });
  });

  describe("hostile SAS tokens never crash the hub", () => {
    it("refuses skn=%E0 on MQTT (CONNACK 4) and REST (401), and keeps serving", async () => {
      const token = `${deviceToken(hub, "dev-x", keys.get("dev-x")!)}&skn=%E0`;
      const c = await raw();
      c.write(connectPacket("dev-x", token));
      await c.waitClosed();
      expect(c.received).toEqual([{ type: "connack", codes: [4] }]);
      const res = await rest(hub, "GET", "/twins/dev-x", { auth: `${serviceToken(hub)}&skn=%E0` });
      expect(res.status).toBe(401);
      expect((await rest(hub, "GET", "/twins/dev-x", { auth: owner })).status).toBe(200);
    });
  });
});
