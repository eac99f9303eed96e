import type { Client as DeviceClient, Message } from "azure-iot-device";
import type { Registry } from "azure-iothub";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually, registryFor, startTestHub, twinOf } from "../support.js";
import { receivingDevice, ServiceClient } from "./support.js";

type Hub = Awaited<ReturnType<typeof startTestHub>>;

describe("cloud-to-device messages: the unmodified azure-iothub Client to azure-iot-device over MQTT", () => {
  let hub: Hub;
  let registry: Registry;
  let service: ServiceClient;
  const devices: DeviceClient[] = [];

  async function newDevice(deviceId: string): Promise<string> {
    const { responseBody } = await registry.create({ deviceId });
    const key = responseBody.authentication?.symmetricKey?.primaryKey as string;
    return `HostName=${hub.hostName};DeviceId=${deviceId};SharedAccessKey=${key}`;
  }
  async function device(deviceId: string) {
    const d = await receivingDevice(await newDevice(deviceId), hub.caPem);
    devices.push(d.client);
    return d;
  }

  beforeAll(async () => {
    hub = await startTestHub({ cloudToDevice: { feedbackIntervalMs: 100 } });
    registry = registryFor(hub.serviceConnectionString, hub.caPem);
    service = new ServiceClient(hub.serviceConnectionString, hub.caFile);
    expect((await service.call("open")).ok).toBe(true);
    expect((await service.call("feedback")).ok).toBe(true);
  }, 30_000);
  afterAll(async () => {
    await Promise.all(devices.map((c) => c.close().catch(() => {})));
    await service?.close();
    await hub?.cleanup();
  });

  it("delivers a message with its ids, content type and properties; completing it empties the queue", async () => {
    const { messages } = await device("c2d-basic");
    const sent = await service.send("c2d-basic", {
      data: JSON.stringify({ command: "reboot" }),
      messageId: "msg-1",
      correlationId: "corr-1",
      contentType: "application/json",
      contentEncoding: "utf-8",
      properties: { priority: "high", "with space": "a&b=c/d" },
    });
    expect(sent).toMatchObject({ ok: true, result: "sent" });
    const [msg] = await eventually(() => (messages.length ? messages : undefined));
    expect(JSON.parse(msg.getData().toString())).toEqual({ command: "reboot" });
    expect(msg.messageId).toBe("msg-1");
    expect(msg.correlationId).toBe("corr-1");
    expect(msg.contentType).toBe("application/json");
    expect(msg.contentEncoding).toBe("utf-8");
    expect(msg.to).toBe("/devices/c2d-basic/messages/devicebound");
    expect(msg.properties.getValue("priority")).toBe("high");
    expect(msg.properties.getValue("with space")).toBe("a&b=c/d");
    await eventually(() => (hub.cloudToDeviceDepth("c2d-basic") === 0 ? true : undefined));
    expect((await twinOf(registry, "c2d-basic")).cloudToDeviceMessageCount).toBe(0);
  });

  it("keeps messages for a device that went offline (the twin counts them) and delivers them in order when it is back", async () => {
    const cs = await newDevice("c2d-offline");
    // The SDK subscribes once, with a persistent session (CleanSession=0): the subscription outlives the connection.
    const first = await receivingDevice(cs, hub.caPem);
    await first.client.close();
    for (let i = 0; i < 3; i++) expect((await service.send("c2d-offline", { data: `m${i}` })).ok).toBe(true);
    expect((await twinOf(registry, "c2d-offline")).cloudToDeviceMessageCount).toBe(3);
    const identity = await registry.get("c2d-offline");
    expect(identity.responseBody.cloudToDeviceMessageCount).toBe(3);
    const d = await receivingDevice(cs, hub.caPem);
    devices.push(d.client);
    await eventually(() => (d.messages.length === 3 ? true : undefined));
    expect(d.messages.map((m: Message) => m.getData().toString())).toEqual(["m0", "m1", "m2"]);
    await eventually(() => (hub.cloudToDeviceDepth("c2d-offline") === 0 ? true : undefined));
  });

  it("a message sent before the device ever subscribed is not delivered: it is rejected when the device subscribes", async () => {
    const cs = await newDevice("c2d-early");
    const before = service.records().length;
    expect(
      (await service.send("c2d-early", { data: "early", messageId: "early-1", ack: "negative" })).ok,
    ).toBe(true);
    expect(hub.cloudToDeviceDepth("c2d-early")).toBe(1);
    const d = await receivingDevice(cs, hub.caPem);
    devices.push(d.client);
    const records = (await service.waitRecords(before + 1)).slice(before);
    expect(records).toEqual([
      expect.objectContaining({
        originalMessageId: "early-1",
        statusCode: "Rejected",
        deviceId: "c2d-early",
      }),
    ]);
    expect(hub.cloudToDeviceDepth("c2d-early")).toBe(0);
    // Messages sent after the subscription arrive.
    expect((await service.send("c2d-early", { data: "late" })).ok).toBe(true);
    await eventually(() => (d.messages.length === 1 ? true : undefined));
    expect(d.messages[0].getData().toString()).toBe("late");
  });

  it("ack=positive and ack=full give Success feedback on completion; none and negative give none", async () => {
    const { messages } = await device("c2d-ack");
    const before = service.records().length;
    for (const ack of ["none", "positive", "negative", "full"])
      expect((await service.send("c2d-ack", { data: ack, messageId: `ack-${ack}`, ack })).ok).toBe(true);
    await eventually(() => (messages.length === 4 ? true : undefined));
    const records = (await service.waitRecords(before + 2)).slice(before);
    // Give any wrongly generated record for none/negative the time to show up.
    await new Promise((r) => setTimeout(r, 500));
    expect(service.records().length).toBe(before + 2);
    expect(records.map((r) => r.originalMessageId).sort()).toEqual(["ack-full", "ack-positive"]);
    const generationId = (await registry.get("c2d-ack")).responseBody.generationId;
    for (const r of records) {
      expect(r).toMatchObject({ statusCode: "Success", description: "Success", deviceId: "c2d-ack" });
      expect(r.deviceGenerationId).toBe(generationId);
      expect(Number.isNaN(Date.parse(r.enqueuedTimeUtc))).toBe(false);
    }
    const batch = service.feedback[service.feedback.length - 1];
    expect(batch.contentType).toBe("application/vnd.microsoft.iothub.feedback.json");
  });

  it("MQTT devices cannot reject or abandon: the SDK refuses, and the message was completed on receipt", async () => {
    const d = await receivingDevice(await newDevice("c2d-reject"), hub.caPem);
    devices.push(d.client);
    const before = service.records().length;
    expect((await service.send("c2d-reject", { data: "x", messageId: "rej-1", ack: "full" })).ok).toBe(true);
    const [msg] = await eventually(() => (d.messages.length ? d.messages : undefined));
    // azure-iot-device-mqtt: "the MQTT transport does not support rejecting messages" (NotImplementedError).
    expect(() => d.client.reject(msg, () => {})).toThrow(/does not support rejecting/);
    expect(() => d.client.abandon(msg, () => {})).toThrow(/does not support abandoning/);
    const records = (await service.waitRecords(before + 1)).slice(before);
    expect(records).toEqual([expect.objectContaining({ originalMessageId: "rej-1", statusCode: "Success" })]);
  });

  it("a device never receives another device's messages", async () => {
    const a = await device("c2d-a");
    const b = await device("c2d-b");
    expect((await service.send("c2d-a", { data: "for-a" })).ok).toBe(true);
    await eventually(() => (a.messages.length === 1 ? true : undefined));
    await new Promise((r) => setTimeout(r, 300));
    expect(b.messages).toHaveLength(0);
  });

  it("refuses an unknown device (DeviceNotFoundError), the 51st pending message (DeviceMaximumQueueDepthExceededError) and a body over 64 KB (MessageTooLargeError)", async () => {
    const unknown = await service.send("no-such-device", { data: "x" });
    expect(unknown.ok).toBe(false);
    expect(unknown.error?.name).toBe("DeviceNotFoundError");

    await newDevice("c2d-full");
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => service.send("c2d-full", { data: `m${i}` })),
    );
    expect(results.every((r) => r.ok)).toBe(true);
    const over = await service.send("c2d-full", { data: "one too many" });
    expect(over.ok).toBe(false);
    expect(over.error?.name).toBe("DeviceMaximumQueueDepthExceededError");
    expect((await twinOf(registry, "c2d-full")).cloudToDeviceMessageCount).toBe(50);

    await newDevice("c2d-big");
    const big = await service.send("c2d-big", { data: "x".repeat(64 * 1024 + 1) });
    expect(big.error?.name).toBe("MessageTooLargeError");
    const justFits = await service.send("c2d-big", { data: "x".repeat(60 * 1024) });
    expect(justFits.ok).toBe(true);
  });

  it("a deleted device's queue goes with it", async () => {
    await newDevice("c2d-deleted");
    expect((await service.send("c2d-deleted", { data: "x" })).ok).toBe(true);
    expect(hub.cloudToDeviceDepth("c2d-deleted")).toBe(1);
    await registry.delete("c2d-deleted");
    expect(hub.cloudToDeviceDepth("c2d-deleted")).toBe(0);
  });
});
