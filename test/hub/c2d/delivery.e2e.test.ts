import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Client as DeviceClient } from "azure-iot-device";
import type { Registry } from "azure-iothub";
import { type IClientPublishOptions, type MqttClient, connect as mqttConnect } from "mqtt";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { makeToken } from "../../../src/hub/auth/sas.js";
import { DEV_POLICIES, type HubOptions, startHub } from "../../../src/hub/index.js";
import { amqpConnect, request } from "../amqp/support.js";
import { eventually, registryFor, startTestHub } from "../support.js";
import { receivingDevice, ServiceClient } from "./support.js";

type Hub = Awaited<ReturnType<typeof startHub>>;

interface Received {
  topic: string;
  payload: string;
  qos: number;
  messageId?: number;
  dup: boolean;
}

/** mqtt.js as a device, with the SAS token the SDKs make. `ack: false` never sends PUBACK. */
async function rawDevice(
  hub: Hub,
  deviceId: string,
  key: string,
  opts: { clean?: boolean; ack?: boolean; subscribe?: boolean } = {},
): Promise<{ client: MqttClient; received: Received[] }> {
  const token = makeToken(key, `${hub.hostName}/devices/${deviceId}`, Math.floor(Date.now() / 1000) + 3600);
  const client = mqttConnect(`mqtts://localhost:${hub.port}`, {
    clientId: deviceId,
    username: `${hub.hostName}/${deviceId}/?api-version=2021-04-12`,
    password: token,
    ca: hub.caPem,
    clean: opts.clean ?? false,
    reconnectPeriod: 0,
    protocolVersion: 4,
  });
  const received: Received[] = [];
  client.on("message", (topic, payload, packet) => {
    received.push({
      topic,
      payload: payload.toString(),
      qos: packet.qos,
      messageId: packet.messageId,
      dup: packet.dup,
    });
  });
  if (opts.ack === false) {
    // mqtt.js handles one packet at a time and sends PUBACK as it finishes one: drop the PUBACK, keep reading.
    const internal = client as unknown as {
      _sendPacket: (p: { cmd: string }, cb?: () => void, put?: unknown) => void;
    };
    const send = internal._sendPacket.bind(client);
    internal._sendPacket = (p, cb, put) => (p.cmd === "puback" ? cb?.() : send(p, cb, put));
  }
  await new Promise<void>((resolve, reject) => {
    client.once("connect", () => resolve());
    client.once("error", reject);
  });
  if (opts.subscribe !== false) {
    await new Promise<void>((resolve, reject) =>
      client.subscribe(`devices/${deviceId}/messages/devicebound/#`, { qos: 1 }, (err, granted) =>
        err
          ? reject(err)
          : granted[0]?.qos === 1
            ? resolve()
            : reject(new Error(`SUBACK ${granted[0]?.qos}`)),
      ),
    );
  }
  return { client, received };
}

/** Ends the TCP connection without DISCONNECT (as a device losing its network). */
function drop(client: MqttClient): Promise<void> {
  return new Promise((resolve) => client.end(true, {} as IClientPublishOptions, () => resolve()));
}

describe("cloud-to-device delivery details", () => {
  let hub: Hub & { cleanup(): Promise<void> };
  let registry: Registry;
  let service: ServiceClient;
  const cleanups: Array<() => Promise<unknown> | undefined> = [];

  async function newDevice(deviceId: string): Promise<string> {
    const { responseBody } = await registry.create({ deviceId });
    return responseBody.authentication?.symmetricKey?.primaryKey as string;
  }

  beforeAll(async () => {
    hub = await startTestHub({ cloudToDevice: { feedbackIntervalMs: 100, lockTimeoutMs: 1500 } });
    registry = registryFor(hub.serviceConnectionString, hub.caPem);
    service = new ServiceClient(hub.serviceConnectionString, hub.caFile);
    expect((await service.call("open")).ok).toBe(true);
    expect((await service.call("feedback")).ok).toBe(true);
  }, 30_000);
  afterEach(async () => {
    await Promise.all(cleanups.splice(0).map((c) => c()));
  });
  afterAll(async () => {
    await service?.close();
    await hub?.cleanup();
  });

  it("sends QoS 1 on devices/{id}/messages/devicebound/{url-encoded property bag}, as IoT Hub writes it", async () => {
    const key = await newDevice("raw-topic");
    const { client, received } = await rawDevice(hub, "raw-topic", key);
    cleanups.push(() => drop(client));
    await service.send("raw-topic", {
      data: "payload",
      messageId: "m 1",
      correlationId: "c1",
      ack: "full",
      contentType: "text/plain",
      properties: { empty: "", plain: "a b" },
    });
    const [m] = await eventually(() => (received.length ? received : undefined));
    expect(m.qos).toBe(1);
    expect(m.payload).toBe("payload");
    expect(m.topic).toBe(
      "devices/raw-topic/messages/devicebound/%24.mid=m%201&%24.cid=c1&%24.to=%2Fdevices%2Fraw-topic%2Fmessages%2Fdevicebound&%24.ct=text%2Fplain&iothub-ack=full&empty=&plain=a%20b",
    );
    await eventually(() => (hub.cloudToDeviceDepth("raw-topic") === 0 ? true : undefined));
  });

  it("a message expires while the device is offline: never delivered, Expired feedback for ack=negative and full", async () => {
    const key = await newDevice("c2d-expire");
    const before = service.records().length;
    const soon = () => Date.now() + 1000;
    for (const ack of ["positive", "negative", "full"])
      expect(
        await service.send("c2d-expire", { data: ack, messageId: `exp-${ack}`, ack, expiryTimeUtc: soon() }),
      ).toMatchObject({ ok: true });
    const records = (await service.waitRecords(before + 2)).slice(before);
    expect(records.map((r) => r.originalMessageId).sort()).toEqual(["exp-full", "exp-negative"]);
    for (const r of records)
      expect(r).toMatchObject({
        statusCode: "Expired",
        deviceId: "c2d-expire",
        description: "Message Expired",
      });
    expect(hub.cloudToDeviceDepth("c2d-expire")).toBe(0);
    const { client, received } = await rawDevice(hub, "c2d-expire", key);
    cleanups.push(() => drop(client));
    await new Promise((r) => setTimeout(r, 300));
    expect(received).toEqual([]);
  });

  it("a message not PUBACK'd before the connection drops stays locked, then is delivered again once its lock times out", async () => {
    const key = await newDevice("c2d-redeliver");
    const first = await rawDevice(hub, "c2d-redeliver", key, { ack: false });
    expect(
      (await service.send("c2d-redeliver", { data: "again", messageId: "r1", ack: "positive" })).ok,
    ).toBe(true);
    await eventually(() => (first.received.length ? true : undefined));
    await drop(first.client);
    const before = service.records().length;
    const second = await rawDevice(hub, "c2d-redeliver", key);
    cleanups.push(() => drop(second.client));
    // Still locked (Invisible) right after the drop; pending in the twin all along.
    expect(hub.cloudToDeviceDepth("c2d-redeliver")).toBe(1);
    const [again] = await eventually(() => (second.received.length ? second.received : undefined), 10_000);
    expect(again.payload).toBe("again");
    expect(again.topic).toContain("%24.mid=r1");
    const records = (await service.waitRecords(before + 1)).slice(before);
    expect(records).toEqual([expect.objectContaining({ originalMessageId: "r1", statusCode: "Success" })]);
    expect(hub.cloudToDeviceDepth("c2d-redeliver")).toBe(0);
  });

  it("a clean session gets only what is sent after it subscribes; a device holds up to 50 unacknowledged messages", async () => {
    const key = await newDevice("c2d-window");
    const silent = await rawDevice(hub, "c2d-window", key, { ack: false, clean: true, subscribe: false });
    cleanups.push(() => drop(silent.client));
    expect((await service.send("c2d-window", { data: "before" })).ok).toBe(true);
    await new Promise((r) => setTimeout(r, 200));
    expect(silent.received).toHaveLength(0);
    await new Promise<void>((resolve) =>
      silent.client.subscribe("devices/c2d-window/messages/devicebound/#", { qos: 1 }, () => resolve()),
    );
    // The message from before the subscription is dead-lettered, not delivered.
    await eventually(() => (hub.cloudToDeviceDepth("c2d-window") === 0 ? true : undefined));
    const sends = await Promise.all(
      Array.from({ length: 50 }, (_, i) => service.send("c2d-window", { data: `w${i}` })),
    );
    expect(sends.every((s) => s.ok)).toBe(true);
    // (Locks time out after 1.5 s here and the messages come again: only the first 50 are looked at.)
    await eventually(() => (silent.received.length >= 50 ? true : undefined));
    expect(new Set(silent.received.slice(0, 50).map((r) => r.payload)).size).toBe(50);
    expect(silent.received.some((r) => r.payload === "before")).toBe(false);
    expect(hub.cloudToDeviceDepth("c2d-window")).toBe(50);
  });

  it("a full queue of 60 KB messages reaches a reading device without tripping its unread-bytes limit", async () => {
    const key = await newDevice("c2d-large");
    const device = await rawDevice(hub, "c2d-large", key);
    cleanups.push(() => drop(device.client));
    const sends = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        service.send("c2d-large", { data: `${i}:`.padEnd(60 * 1024, "x") }),
      ),
    );
    expect(sends.every((s) => s.ok)).toBe(true);
    let closed = false;
    device.client.on("close", () => {
      closed = true;
    });
    const indexes = () => [...new Set(device.received.map((r) => Number(r.payload.split(":")[0])))];
    // In order; a message whose 1.5 s lock ran out on a slow machine may come twice, which the Set folds.
    await eventually(() => (indexes().length === 50 ? true : undefined), 15_000);
    expect(closed).toBe(false);
    expect(indexes()).toEqual(Array.from({ length: 50 }, (_, i) => i));
    await eventually(() => (hub.cloudToDeviceDepth("c2d-large") === 0 ? true : undefined));
  });

  it("stops assembling a message sent over many frames once it passes 1 MiB, and keeps serving", async () => {
    await newDevice("c2d-huge");
    const owner = DEV_POLICIES.find((p) => p.name === "iothubowner")!;
    const connect = async () => {
      const connection = await amqpConnect(hub);
      cleanups.push(async () => connection.close());
      const put = await request(connection, "$cbs", {
        body: makeToken(owner.primaryKey, hub.hostName, Math.floor(Date.now() / 1000) + 3600, "iothubowner"),
        application_properties: {
          operation: "put-token",
          type: "servicebus.windows.net:sastoken",
          name: hub.hostName,
        },
      });
      expect(put.application_properties?.["status-code"]).toBe(200);
      return connection;
    };
    const huge = await connect();
    const outcome = await new Promise<string>((resolve) => {
      const sender = huge.open_sender({ target: { address: "/messages/devicebound" } });
      sender.on("sender_close", (ctx) =>
        resolve(String((ctx.sender.error as { condition?: string })?.condition)),
      );
      sender.on("accepted", () => resolve("accepted"));
      sender.on("rejected", () => resolve("rejected"));
      huge.on("disconnected", () => resolve("disconnected"));
      sender.once("sendable", () =>
        sender.send({ to: "/devices/c2d-huge/messages/devicebound", body: Buffer.alloc(3 * 1024 * 1024, 1) }),
      );
    });
    expect(["amqp:link:message-size-exceeded", "disconnected"]).toContain(outcome);
    expect(hub.cloudToDeviceDepth("c2d-huge")).toBe(0);
    const again = await connect();
    const accepted = await new Promise<boolean>((resolve) => {
      const sender = again.open_sender({ target: { address: "/messages/devicebound" } });
      sender.on("accepted", () => resolve(true));
      sender.on("rejected", () => resolve(false));
      sender.once("sendable", () =>
        sender.send({ to: "/devices/c2d-huge/messages/devicebound", body: "small" }),
      );
    });
    expect(accepted).toBe(true);
    expect(hub.cloudToDeviceDepth("c2d-huge")).toBe(1);
  });

  it("refuses a wrong key and a policy without ServiceConnect (UnauthorizedError)", async () => {
    const wrong = hub.serviceConnectionString.replace(
      /SharedAccessKey=[^;]+/,
      `SharedAccessKey=${Buffer.from("wrong key").toString("base64")}`,
    );
    const bad = new ServiceClient(wrong, hub.caFile);
    cleanups.push(() => bad.close());
    const opened = await bad.call("open");
    expect(opened.ok).toBe(false);
    // $cbs answers the put-token 401; azure-iothub raises "Could not connect" carrying its UnauthorizedError.
    expect(opened.error).toMatchObject({ name: "Error", cause: "UnauthorizedError" });

    const reader = new ServiceClient(hub.connectionStringFor("registryRead"), hub.caFile);
    cleanups.push(() => reader.close());
    await newDevice("c2d-noperm");
    const sent = await reader.send("c2d-noperm", { data: "x" });
    expect(sent.ok).toBe(false);
    expect(sent.error?.name).toBe("UnauthorizedError");
    // The feedback link: attached, then detached with amqp:unauthorized-access (the SDK only logs that), seen raw.
    const connection = await amqpConnect(hub);
    cleanups.push(async () => connection.close());
    const policy = DEV_POLICIES.find((p) => p.name === "registryRead")!;
    const put = await request(connection, "$cbs", {
      body: makeToken(policy.primaryKey, hub.hostName, Math.floor(Date.now() / 1000) + 3600, "registryRead"),
      application_properties: {
        operation: "put-token",
        type: "servicebus.windows.net:sastoken",
        name: hub.hostName,
      },
    });
    expect(put.application_properties?.["status-code"]).toBe(200);
    const detached = await new Promise<string | undefined>((resolve) => {
      const receiver = connection.open_receiver({ source: { address: "/messages/serviceBound/feedback" } });
      receiver.on("receiver_close", (ctx) =>
        resolve((ctx.receiver.error as { condition?: string })?.condition),
      );
    });
    expect(detached).toBe("amqp:unauthorized-access");
    expect(hub.cloudToDeviceDepth("c2d-noperm")).toBe(0);
  });
});

describe("cloud-to-device messages across a hub restart", () => {
  let dataDir = "";
  const start = (extra: HubOptions = {}) => startHub({ port: 0, dataDir, quiet: true, ...extra });
  // Made in beforeAll, not at collection: a run that filters this block out leaves nothing behind.
  beforeAll(() => {
    dataDir = mkdtempSync(join(tmpdir(), "hub-c2d-"));
  });
  afterAll(() => {
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it("keeps accepted messages and a persistent session's subscription: the device gets them after the restart without subscribing again", async () => {
    let hub = await start();
    let service = new ServiceClient(hub.serviceConnectionString, hub.caFile);
    const registry = registryFor(hub.serviceConnectionString, hub.caPem);
    const key = (await registry.create({ deviceId: "c2d-restart" })).responseBody.authentication?.symmetricKey
      ?.primaryKey as string;
    try {
      // The SDK subscribes once (CleanSession=0); the subscription outlives the connection and the hub.
      const sdk = await receivingDevice(
        `HostName=${hub.hostName};DeviceId=c2d-restart;SharedAccessKey=${key}`,
        hub.caPem,
      );
      await (sdk.client as DeviceClient).close();
      for (let i = 0; i < 3; i++)
        expect((await service.send("c2d-restart", { data: `kept-${i}` })).ok).toBe(true);
      await service.close();
      await hub.stop();

      hub = await start();
      service = new ServiceClient(hub.serviceConnectionString, hub.caFile);
      expect(hub.cloudToDeviceDepth("c2d-restart")).toBe(3);
      const device = await rawDevice(hub, "c2d-restart", key, { subscribe: false });
      await eventually(() => (device.received.length === 3 ? true : undefined));
      expect(device.received.map((r) => r.payload)).toEqual(["kept-0", "kept-1", "kept-2"]);
      await eventually(() => (hub.cloudToDeviceDepth("c2d-restart") === 0 ? true : undefined));
      await drop(device.client);
    } finally {
      await service.close();
      await hub.stop();
    }
  }, 30_000);
});
