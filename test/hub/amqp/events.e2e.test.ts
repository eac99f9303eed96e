import { Message } from "azure-iot-device";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { partitionOf } from "../../../src/hub/events/message.js";
import { TUTORIAL_DEVICE } from "../../../src/hub/index.js";
import { connectDevice, eventually, startTestHub } from "../support.js";
import { consume } from "./support.js";

type Hub = Awaited<ReturnType<typeof startTestHub>>;

function telemetry(id: string, body: unknown, props: Record<string, string> = {}): Message {
  const m = new Message(JSON.stringify(body));
  m.messageId = id;
  m.contentType = "application/json";
  m.contentEncoding = "utf-8";
  for (const [k, v] of Object.entries(props)) m.properties.add(k, v);
  return m;
}

const DEVICE_PARTITION = String(partitionOf(TUTORIAL_DEVICE.deviceId, 4));

describe("the Event Hubs-compatible endpoint, read with the unmodified @azure/event-hubs consumer", () => {
  let hub: Hub;
  const lines: string[] = [];
  let device: Awaited<ReturnType<typeof connectDevice>>;
  beforeAll(async () => {
    hub = await startTestHub({
      quiet: false,
      log: (l) => lines.push(l),
      consumerGroups: ["analytics"],
    });
    device = await connectDevice(hub.deviceConnectionString(), hub.caPem);
    for (let i = 0; i < 5; i++) {
      // A few ms apart, so each has its own enqueued time (the enqueued-time filter test relies on it).
      await new Promise((r) => setTimeout(r, 3));
      await device.sendEvent(
        telemetry(`m${i}`, { temperature: 20 + i }, { alert: i % 2 ? "yes" : "no", "with space": "a&b=c" }),
      );
    }
  }, 30_000);
  afterAll(async () => {
    await device?.close();
    await hub?.cleanup();
  });

  it("answers $management: the hub's partitions and each partition's last event", async () => {
    const run = await consume(hub.caFile, {
      action: "properties",
      connectionString: hub.eventHubConnectionString,
    });
    const { hub: info, partitions } = run.lines[0] as {
      hub: { name: string; partitionIds: string[] };
      partitions: Array<{
        partitionId: string;
        lastEnqueuedSequenceNumber: number;
        isEmpty: boolean;
        beginningSequenceNumber: number;
      }>;
    };
    expect(info.name).toBe(hub.eventHubName);
    expect(info.partitionIds).toEqual(["0", "1", "2", "3"]);
    const mine = partitions.find((p) => p.partitionId === DEVICE_PARTITION);
    // Each QoS 1 send resolved only after the hub stored the message, so all five are there.
    expect(mine).toMatchObject({ lastEnqueuedSequenceNumber: 4, isEmpty: false, beginningSequenceNumber: 0 });
    for (const p of partitions.filter((x) => x.partitionId !== DEVICE_PARTITION))
      expect(p).toMatchObject({ isEmpty: true, lastEnqueuedSequenceNumber: -1 });
  }, 30_000);

  it("delivers every message from the earliest position, in order, with IoT Hub's properties", async () => {
    const run = await consume(hub.caFile, {
      connectionString: hub.eventHubConnectionString,
      position: { offset: "-1" },
      count: 5,
    });
    expect(run.error).toBeUndefined();
    expect(run.events.map((e) => e.sequenceNumber)).toEqual([0, 1, 2, 3, 4]);
    expect(new Set(run.events.map((e) => e.partitionId))).toEqual(new Set([DEVICE_PARTITION]));
    const first = run.events[0] as unknown as Record<string, unknown> & {
      systemProperties: Record<string, unknown>;
      properties: Record<string, unknown>;
    };
    expect(first.body).toEqual({ temperature: 20 });
    expect(first.messageId).toBe("m0");
    expect(first.contentType).toBe("application/json");
    expect(first.properties).toEqual({ alert: "no", "with space": "a&b=c" });
    expect(first.systemProperties).toMatchObject({
      "iothub-connection-device-id": TUTORIAL_DEVICE.deviceId,
      "iothub-message-source": "Telemetry",
      contentEncoding: "utf-8",
    });
    expect(typeof first.systemProperties["iothub-enqueuedtime"]).toBe("number");
    expect(JSON.parse(String(first.systemProperties["iothub-connection-auth-method"]))).toMatchObject({
      scope: "device",
      type: "sas",
    });
    // Offsets grow with the stored size; they are not the sequence numbers.
    const offsets = run.events.map((e) => Number(e.offset));
    expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
    expect(offsets[1]).toBeGreaterThan(1);
  }, 30_000);

  it("starts after a sequence number, an offset or an enqueued time, and a restarted reader gets exactly the rest", async () => {
    const all = await consume(hub.caFile, {
      connectionString: hub.eventHubConnectionString,
      partitionId: DEVICE_PARTITION,
      position: { offset: "-1" },
      count: 5,
    });
    // A checkpoint after the third event: the next reader resumes from its sequence number.
    const checkpoint = all.events[2];
    const bySequence = await consume(hub.caFile, {
      connectionString: hub.eventHubConnectionString,
      partitionId: DEVICE_PARTITION,
      position: { sequenceNumber: checkpoint.sequenceNumber },
      count: 2,
    });
    expect(bySequence.events.map((e) => e.messageId)).toEqual(["m3", "m4"]);
    const byOffset = await consume(hub.caFile, {
      connectionString: hub.eventHubConnectionString,
      partitionId: DEVICE_PARTITION,
      position: { offset: all.events[1].offset },
      count: 3,
    });
    expect(byOffset.events.map((e) => e.messageId)).toEqual(["m2", "m3", "m4"]);
    const inclusive = await consume(hub.caFile, {
      connectionString: hub.eventHubConnectionString,
      partitionId: DEVICE_PARTITION,
      position: { sequenceNumber: 4, isInclusive: true },
      count: 1,
    });
    expect(inclusive.events.map((e) => e.messageId)).toEqual(["m4"]);
    const enqueued = all.events.map((e) => new Date(String(e.enqueuedTimeUtc)).getTime());
    const byTime = await consume(hub.caFile, {
      connectionString: hub.eventHubConnectionString,
      partitionId: DEVICE_PARTITION,
      position: { enqueuedOn: enqueued[0] - 1 },
      count: 1,
    });
    expect(byTime.events[0].messageId).toBe("m0");
    // Strictly after the second event's time: the first event enqueued later than it.
    const later = enqueued.findIndex((t) => t > enqueued[1]);
    const afterSecond = await consume(hub.caFile, {
      connectionString: hub.eventHubConnectionString,
      partitionId: DEVICE_PARTITION,
      position: { enqueuedOn: enqueued[1] },
      count: 1,
    });
    expect(later).toBe(2);
    expect(afterSecond.events[0].messageId).toBe("m2");
  }, 60_000);

  it("from the latest position delivers only what is sent after the reader attached", async () => {
    const before = lines.filter((l) => l.includes("from sequence number 5")).length;
    const run = consume(hub.caFile, {
      connectionString: hub.eventHubConnectionString,
      partitionId: DEVICE_PARTITION,
      position: { offset: "@latest" },
      count: 1,
    });
    await eventually(
      () => (lines.filter((l) => l.includes("from sequence number 5")).length > before ? true : undefined),
      15_000,
    );
    await device.sendEvent(telemetry("late", { late: true }));
    const result = await run;
    expect(result.events.map((e) => e.messageId)).toEqual(["late"]);
  }, 30_000);

  it("serves other consumer groups the hub has, independently, and refuses unknown ones", async () => {
    const analytics = await consume(hub.caFile, {
      connectionString: hub.eventHubConnectionString,
      consumerGroup: "analytics",
      partitionId: DEVICE_PARTITION,
      position: { offset: "-1" },
      count: 1,
    });
    expect(analytics.events[0].messageId).toBe("m0");
    const unknown = await consume(hub.caFile, {
      connectionString: hub.eventHubConnectionString,
      consumerGroup: "nosuchgroup",
      partitionId: DEVICE_PARTITION,
      position: { offset: "-1" },
      count: 1,
    });
    expect(unknown.events).toEqual([]);
    expect(unknown.error?.message).toMatch(/could not be found/);
  }, 30_000);

  it("refuses a wrong key and a policy without ServiceConnect (registryRead)", async () => {
    const wrongKey = hub.eventHubConnectionString.replace(
      /SharedAccessKey=[^;]+/,
      `SharedAccessKey=${Buffer.from("not-the-service-key-0000000000").toString("base64")}`,
    );
    const refused = await consume(hub.caFile, { action: "properties", connectionString: wrongKey });
    expect(refused.error?.code).toBe("UnauthorizedError");
    const registryRead = hub
      .connectionStringFor("registryRead")
      .replace(/^HostName=[^;]+/, `Endpoint=sb://localhost:${hub.amqpPort}/`)
      .concat(`;EntityPath=${hub.eventHubName}`);
    const noPermission = await consume(hub.caFile, {
      connectionString: registryRead,
      partitionId: DEVICE_PARTITION,
      position: { offset: "-1" },
      count: 1,
    });
    expect(noPermission.events).toEqual([]);
    expect(noPermission.error?.code).toBe("UnauthorizedError");
    expect(noPermission.error?.message).toMatch(/ServiceConnect/);
  }, 30_000);
});

describe("durability", () => {
  it("keeps messages, sequence numbers and offsets across a hub restart on the same data directory", async () => {
    const first = await startTestHub({ port: 0 });
    const dataDir = first.dataDir as string;
    const device = await connectDevice(first.deviceConnectionString(), first.caPem);
    await device.sendEvent(telemetry("before-1", { n: 1 }));
    await device.sendEvent(telemetry("before-2", { n: 2 }));
    await device.close();
    await first.stop();

    const second = await startTestHubOn(dataDir);
    try {
      const again = await connectDevice(second.deviceConnectionString(), second.caPem);
      await again.sendEvent(telemetry("after", { n: 3 }));
      await again.close();
      const run = await consume(second.caFile, {
        connectionString: second.eventHubConnectionString,
        partitionId: DEVICE_PARTITION,
        position: { offset: "-1" },
        count: 3,
      });
      expect(run.events.map((e) => [e.messageId, e.sequenceNumber])).toEqual([
        ["before-1", 0],
        ["before-2", 1],
        ["after", 2],
      ]);
    } finally {
      await second.cleanup();
    }
  }, 60_000);
});

/** A second hub on a data directory left by an earlier one (removed by cleanup). */
async function startTestHubOn(dataDir: string) {
  const { startHub } = await import("../../../src/hub/index.js");
  const { rmSync } = await import("node:fs");
  const hub = await startHub({ port: 0, dataDir, quiet: true });
  return Object.assign(hub, {
    async cleanup() {
      await hub.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  });
}
