import type { MqttClient } from "mqtt";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { MAX_AMQP_FRAME_BYTES } from "../../../src/hub/amqp/frame-guard.js";
import { TUTORIAL_DEVICE } from "../../../src/hub/index.js";
import { MAX_MQTT_PACKET_BYTES } from "../../../src/hub/mqtt/frame-guard.js";
import { eventually, startTestHub } from "../support.js";
import { closedWithin, connected, mqttWs, rawUpgrade, type Upgrade } from "./support.js";

type Hub = Awaited<ReturnType<typeof startTestHub>>;
const { deviceId, primaryKey } = TUTORIAL_DEVICE;

/** A device session over wss that answers a twin GET: the hub is serving. */
async function stillServing(hub: Hub, clients: MqttClient[]) {
  const client = mqttWs(hub, deviceId, primaryKey);
  clients.push(client);
  await connected(client);
  const answer = new Promise<string>((resolve) => client.on("message", (topic) => resolve(topic)));
  client.subscribe("$iothub/twin/res/#");
  client.publish("$iothub/twin/GET/?$rid=1", "");
  expect(await answer).toBe("$iothub/twin/res/200/?$rid=1");
  client.end(true);
}

describe("WebSocket upgrades: routing, refusals and hostile clients", () => {
  let hub: Hub;
  const lines: string[] = [];
  const clients: MqttClient[] = [];
  const upgrade = (path: string, protocols: string[] | undefined) =>
    rawUpgrade(hub.port, hub.caPem, path, protocols);
  const open = async (path = "/$iothub/websocket", protocols = ["mqtt"]) => {
    const u = await upgrade(path, protocols);
    if (!u.ok) throw new Error(`refused with ${u.status}`);
    return u.socket;
  };

  beforeAll(async () => {
    hub = await startTestHub({ inMemory: true, quiet: false, log: (l) => lines.push(l) });
  });
  afterEach(() => {
    for (const c of clients.splice(0)) c.end(true);
  });
  afterAll(async () => {
    await hub.cleanup();
  });

  it("answers 400 to a wrong path, a missing or wrong subprotocol, and MQTT 3.1's subprotocol", async () => {
    const cases: Array<[string, string[] | undefined]> = [
      ["/", ["mqtt"]],
      ["/$iothub/websocket/extra", ["mqtt"]],
      ["/$IOTHUB/WEBSOCKET", ["mqtt"]],
      ["/$servicebus/websocket", ["mqtt"]],
      ["/$iothub/websocket", undefined],
      ["/$iothub/websocket", ["mqttv3.1"]],
      ["/$iothub/websocket", ["MQTT"]],
      ["/:1/$iothub/websocket", ["mqtt"]],
    ];
    for (const [path, protocols] of cases) {
      const u = await upgrade(path, protocols);
      expect(u, `${path} ${protocols}`).toMatchObject({ ok: false, status: 400 });
    }
    const noProtocol = (await upgrade("/$iothub/websocket", undefined)) as Extract<Upgrade, { ok: false }>;
    expect(noProtocol.body).toMatch(/needs the subprotocol mqtt or AMQPWSB10 \(none was offered\)/);
    expect(lines.some((l) => l.startsWith("WebSocket upgrade from"))).toBe(true);
    await stillServing(hub, clients);
  });

  it("accepts the query string the C and Python SDKs add, picks mqtt from a list, declines compression", async () => {
    const u = await upgrade("/$iothub/websocket?iothub-no-client-cert=true", ["chat", "mqtt"]);
    expect(u.ok).toBe(true);
    if (!u.ok) return;
    expect(u.protocol).toBe("mqtt");
    // ws offers permessage-deflate by default; the hub declines it.
    expect(u.socket.extensions).toBe("");
    u.socket.terminate();
    // The path MqttWs sends when HostName carries this port (see routes.ts).
    const aliased = await upgrade(`/:${hub.port}/$iothub/websocket`, ["mqtt"]);
    expect(aliased.ok).toBe(true);
    if (aliased.ok) aliased.socket.terminate();
  });

  it("closes a connection that sends garbage instead of MQTT, and keeps serving", async () => {
    const socket = await open();
    socket.send(Buffer.from("GET / HTTP/1.1\r\n\r\n\xff\xff\xff\xff\xff"));
    await closedWithin(socket, 10_000);
    // A CONNECT-shaped packet with a malformed length.
    const second = await open();
    second.send(Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0xff]));
    await closedWithin(second, 10_000);
    await stillServing(hub, clients);
  });

  it("closes a connection that sends a text frame (MQTT 3.1.1 section 6.0: binary frames only)", async () => {
    const socket = await open();
    socket.send("hello");
    await closedWithin(socket, 10_000);
    await stillServing(hub, clients);
  });

  it("closes a connection whose WebSocket message is over the limit (1009), and one announcing a huge packet", async () => {
    const socket = await open();
    socket.send(Buffer.alloc(MAX_MQTT_PACKET_BYTES + 1));
    expect(await closedWithin(socket, 10_000)).toBe(1009);
    // A small message whose MQTT header announces 1 MB: the MQTT frame guard closes it, as over TLS.
    const announcing = await open();
    announcing.send(Buffer.from([0x30, 0x80, 0x80, 0x40]));
    await closedWithin(announcing, 10_000);
    await eventually(() => lines.find((l) => l.includes("over the 327680 limit")), 10_000);
    await stillServing(hub, clients);
  });

  it("closes an AMQP WebSocket whose message is over one frame's size (1009), and one announcing a huge frame", async () => {
    const socket = await open("/$servicebus/websocket", ["AMQPWSB10"]);
    socket.send(Buffer.alloc(MAX_AMQP_FRAME_BYTES + 1));
    expect(await closedWithin(socket, 10_000)).toBe(1009);
    // The AMQP header, then a frame header announcing 1 GB: the AMQP frame guard closes it, as over TLS.
    const announcing = await open("/$servicebus/websocket", ["AMQPWSB10"]);
    announcing.send(Buffer.from([0x41, 0x4d, 0x51, 0x50, 0, 1, 0, 0, 0x40, 0, 0, 0, 2, 0, 0, 0]));
    await closedWithin(announcing, 10_000);
    await stillServing(hub, clients);
  });

  it("AMQP's subprotocol on $iothub/websocket reaches the AMQP server (its header is answered)", async () => {
    const socket = await open("/$iothub/websocket", ["AMQPWSB10"]);
    const reply = new Promise<Buffer>((resolve) => socket.once("message", (d) => resolve(d as Buffer)));
    // AMQP 1.0 SASL protocol header (section 5.3.1).
    socket.send(Buffer.from([0x41, 0x4d, 0x51, 0x50, 3, 1, 0, 0]));
    expect((await reply).subarray(0, 4).toString("latin1")).toBe("AMQP");
    socket.terminate();
  });
});

describe("WebSocket connections under the hub's connection limits", () => {
  let hub: Hub;
  const lines: string[] = [];
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    hub = await startTestHub({
      inMemory: true,
      quiet: false,
      log: (l) => lines.push(l),
      limits: { pendingTimeoutMs: 4000, headersTimeoutMs: 1000, requestTimeoutMs: 1000, idleTimeoutMs: 1000 },
    });
  });
  afterAll(async () => {
    for (const c of clients) c.end(true);
    await hub.cleanup();
  });

  it("an upgraded connection that never sends CONNECT is closed at the pending deadline", async () => {
    const u = await rawUpgrade(hub.port, hub.caPem, "/$iothub/websocket", ["mqtt"]);
    if (!u.ok) throw new Error("refused");
    const started = Date.now();
    await closedWithin(u.socket, 20_000);
    expect(Date.now() - started).toBeGreaterThan(1000);
    await eventually(() => lines.find((l) => l.includes("within 4 s")), 5000);
  }, 30_000);

  it("HTTP's header, request and idle timers do not end a connected MQTT-over-WebSockets session", async () => {
    const client = mqttWs(hub, TUTORIAL_DEVICE.deviceId, TUTORIAL_DEVICE.primaryKey, { keepalive: 0 });
    clients.push(client);
    await connected(client);
    let closed = false;
    client.once("close", () => {
      closed = true;
    });
    // Past every HTTP timer (1 s) and past the pending deadline (4 s), with no byte moving.
    await new Promise((r) => setTimeout(r, 5500));
    expect(closed).toBe(false);
    const answer = new Promise<string>((resolve) => client.on("message", (topic) => resolve(topic)));
    client.subscribe("$iothub/twin/res/#");
    client.publish("$iothub/twin/GET/?$rid=9", "");
    expect(await answer).toBe("$iothub/twin/res/200/?$rid=9");
  }, 30_000);
});

describe("WebSocket connections count against maxConnections", () => {
  let hub: Hub;
  beforeAll(async () => {
    hub = await startTestHub({ inMemory: true, limits: { maxConnections: 2, maxPendingConnections: 2 } });
  });
  afterAll(async () => {
    await hub.cleanup();
  });

  it("a third connection is refused while two WebSocket connections are open; one closing frees a place", async () => {
    const a = await rawUpgrade(hub.port, hub.caPem, "/$iothub/websocket", ["mqtt"]);
    const b = await rawUpgrade(hub.port, hub.caPem, "/$iothub/websocket", ["mqtt"]);
    if (!a.ok || !b.ok) throw new Error("refused");
    const third = await rawUpgrade(hub.port, hub.caPem, "/$iothub/websocket", ["mqtt"]).then(
      (u) => u,
      (e: Error) => e,
    );
    expect(third).toBeInstanceOf(Error);
    a.socket.terminate();
    await eventually(async () => {
      const u = await rawUpgrade(hub.port, hub.caPem, "/$iothub/websocket", ["mqtt"]).catch(() => undefined);
      if (u?.ok) u.socket.terminate();
      return u?.ok ? true : undefined;
    }, 10_000);
    b.socket.terminate();
  });
});
