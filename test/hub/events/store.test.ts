import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { partitionOf } from "../../../src/hub/events/message.js";
import { EventStore } from "../../../src/hub/events/store.js";
import { migrate } from "../../../src/hub/store/migrations.js";

function store(retentionHours = 24) {
  const db = new Database(":memory:");
  migrate(db);
  return new EventStore(db, { partitions: 4, retentionHours, generationIdOf: () => "gen" });
}
const msg = (deviceId: string, properties: Record<string, string> = {}) => ({
  deviceId,
  properties,
  body: Buffer.from("{}"),
});

describe("the events store", () => {
  it("partitions by a stable hash of the device id, spreading devices over all partitions", () => {
    expect(partitionOf("myDeviceId", 4)).toBe(partitionOf("myDeviceId", 4));
    const used = new Set(Array.from({ length: 64 }, (_, i) => partitionOf(`device-${i}`, 4)));
    expect(used).toEqual(new Set([0, 1, 2, 3]));
  });

  it("numbers each partition's events from 0, group-commits a turn's appends and announces them", async () => {
    const s = store();
    const announced: number[] = [];
    s.on("appended", (p: number) => announced.push(p));
    await Promise.all([s.append(msg("a")), s.append(msg("a")), s.append(msg("a"))]);
    const p = partitionOf("a", 4);
    expect(s.read(p, 0, 10).map((e) => e.sequence)).toEqual([0, 1, 2]);
    expect(announced).toEqual([p]);
    s.close();
  });

  it("maps the MQTT property bag: system properties out of the application properties", async () => {
    const s = store();
    await s.append(
      msg("a", {
        "$.mid": "m1",
        "$.ct": "application/json",
        "$.ce": "utf-8",
        "$.cid": "c1",
        "$.ctime": "2024-01-01T00:00:00Z",
        "$.zz": "x",
        k: "v",
      }),
    );
    const [event] = s.read(partitionOf("a", 4), 0, 1);
    expect(event.props.p).toEqual({
      message_id: "m1",
      content_type: "application/json",
      content_encoding: "utf-8",
      correlation_id: "c1",
    });
    expect(event.props.ap).toEqual({ k: "v" });
    expect(event.props.a).toMatchObject({
      "iothub-connection-device-id": "a",
      "iothub-message-source": "Telemetry",
      "iothub-creation-time-utc": "2024-01-01T00:00:00Z",
      "iothub-connection-auth-generation-id": "gen",
    });
    s.close();
  });

  it("prunes events older than the retention, and sequence numbers go on from where they were", async () => {
    const s = store(1);
    await s.append(msg("a"));
    await s.append(msg("a"));
    const p = partitionOf("a", 4);
    expect(s.prune(Date.now() + 2 * 3600_000)).toBe(2);
    expect(s.info(p)).toMatchObject({ empty: true, beginSequence: 2, lastSequence: 1 });
    await s.append(msg("a"));
    expect(s.read(p, 0, 10).map((e) => e.sequence)).toEqual([2]);
    expect(s.info(p)).toMatchObject({ empty: false, beginSequence: 2, lastSequence: 2 });
    s.close();
  });
});
