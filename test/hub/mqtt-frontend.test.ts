import { Duplex } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { Authorizer } from "../../src/hub/auth/authorizer.js";
import { DEV_POLICIES } from "../../src/hub/auth/credentials.js";
import { makeToken } from "../../src/hub/auth/sas.js";
import { createMqttFrontend, type MqttFrontend } from "../../src/hub/mqtt/broker.js";
import type { TelemetryMessage } from "../../src/hub/mqtt/telemetry.js";
import { DeviceRegistry } from "../../src/hub/registry/registry.js";
import { SqliteStore } from "../../src/hub/store/sqlite.js";
import type { RecordChange } from "../../src/hub/store/store.js";
import { mqttPacket as P } from "./mqtt-raw.js";
import { eventually } from "./support.js";

/**
 * The MQTT front end in-process, fed through an in-memory connection, for what a network test cannot time
 * exactly: bytes arriving between the CONNECT and the login, and a store that fails inside a broker hook.
 */

const KEY = Buffer.from("in-process-test-key-0123456789ab").toString("base64");
const HOST = "localhost:1";

/** A store whose writes can be made to fail (a full disk). */
class FlakyStore extends SqliteStore {
  failing = false;
  override write(changes: readonly RecordChange[], deleted?: readonly string[]): void {
    if (this.failing) throw new Error("disk full");
    super.write(changes, deleted);
  }
}

/** The hub's end of a connection: what the test pushes is what the hub reads; what the hub writes is kept. */
class Wire extends Duplex {
  written = Buffer.alloc(0);
  override _read() {}
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void) {
    this.written = Buffer.concat([this.written, chunk]);
    done();
  }
  /** Packet types (MQTT 3.1.1 §2.2.1) and, for PUBLISH, the topic, in the order the hub wrote them. */
  packets(): string[] {
    const out: string[] = [];
    let i = 0;
    const b = this.written;
    while (i < b.length) {
      const type = b[i] >> 4;
      let length = 0;
      let mult = 1;
      let j = i + 1;
      for (;;) {
        const byte = b[j++];
        length += (byte & 0x7f) * mult;
        mult *= 128;
        if (!(byte & 0x80)) break;
      }
      const body = b.subarray(j, j + length);
      const names: Record<number, string> = { 2: "connack", 3: "publish", 4: "puback", 9: "suback" };
      out.push(
        type === 3
          ? `publish ${body.subarray(2, 2 + body.readUInt16BE(0)).toString()}`
          : type === 2
            ? `connack ${body[1]}`
            : (names[type] ?? `type ${type}`),
      );
      i = j + length;
    }
    return out;
  }
}

describe("MQTT front end in-process", () => {
  let frontend: MqttFrontend | undefined;
  const lines: string[] = [];
  const telemetry: TelemetryMessage[] = [];
  afterEach(async () => {
    await frontend?.close();
    lines.length = 0;
    telemetry.length = 0;
  });

  async function setup() {
    const store = new FlakyStore(undefined);
    const registry = new DeviceRegistry(store);
    registry.identities.create("d1", {
      authentication: { symmetricKey: { primaryKey: KEY, secondaryKey: KEY } },
    });
    const authorizer = new Authorizer(
      DEV_POLICIES,
      (h) => h === HOST,
      (id) => registry.find(id),
    );
    frontend = await createMqttFrontend({
      registry,
      authorizer,
      log: (l) => lines.push(l),
      onTelemetry: (m) => {
        telemetry.push(m);
        return undefined;
      },
    });
    return { store, registry };
  }
  const token = () => makeToken(KEY, `${HOST}/devices/d1`, Math.floor(Date.now() / 1000) + 600);
  const connect = (password = token()) => P.connect("d1", `${HOST}/d1/?api-version=2021-04-12`, password);
  const afterConnect = [
    P.subscribe(1, [["$iothub/twin/res/#", 0]]),
    P.publish("$iothub/twin/GET/?$rid=1", ""),
    P.publish("devices/d1/messages/events/", "{}", { qos: 1, messageId: 5 }),
  ];

  it("holds packets that arrive after the CONNECT was read but before the login finished", async () => {
    await setup();
    const wire = new Wire();
    frontend!.handle(wire);
    wire.push(connect());
    // aedes reads the CONNECT on the next tick and logs in one turn later (setImmediate); these bytes come
    // in between, as a second TLS record would.
    await new Promise<void>((resolve) => process.nextTick(() => process.nextTick(resolve)));
    wire.push(Buffer.concat(afterConnect));
    await eventually(() => (wire.packets().length >= 4 ? true : undefined));
    expect(wire.packets()).toEqual(["connack 0", "suback", "puback", "publish $iothub/twin/res/200/?$rid=1"]);
    expect(lines.join("\n")).not.toMatch(/null/);
  });

  it("acts on nothing after a refused CONNECT, even bytes that arrive during the login", async () => {
    const { registry } = await setup();
    const before = registry.find("d1")!.twin.reported.version;
    const wire = new Wire();
    frontend!.handle(wire);
    wire.push(
      connect(
        makeToken(
          Buffer.from("wrong-key-wrong-key-wrong-key!!!").toString("base64"),
          `${HOST}/devices/d1`,
          9e9,
        ),
      ),
    );
    await new Promise<void>((resolve) => process.nextTick(() => process.nextTick(resolve)));
    wire.push(P.publish("$iothub/twin/PATCH/properties/reported/?$rid=2", JSON.stringify({ sneaked: 1 })));
    await eventually(() => (wire.destroyed ? true : undefined));
    await new Promise((r) => setTimeout(r, 50));
    expect(wire.packets()).toEqual(["connack 4"]);
    expect(registry.find("d1")!.twin.reported.version).toBe(before);
  });

  it("keeps serving when the store fails inside the subscribe hook and under twin requests", async () => {
    const { store } = await setup();
    store.failing = true;
    const wire = new Wire();
    frontend!.handle(wire);
    wire.push(
      Buffer.concat([
        connect(),
        P.subscribe(1, [
          ["$iothub/twin/res/#", 0],
          ["$iothub/twin/PATCH/properties/desired/#", 0],
        ]),
        P.publish("$iothub/twin/PATCH/properties/reported/?$rid=7", JSON.stringify({ a: 1 })),
      ]),
    );
    // The session state could not be stored: the subscription is rolled back with the group, so the patch
    // (applied, then rolled back too) is not acknowledged; nothing throws through aedes.
    await eventually(() => (wire.packets().includes("suback") ? true : undefined));
    await new Promise((r) => setTimeout(r, 50));
    expect(wire.destroyed).toBe(false);
    store.failing = false;
    wire.push(
      Buffer.concat([
        P.subscribe(2, [["$iothub/twin/res/#", 0]]),
        P.publish("$iothub/twin/PATCH/properties/reported/?$rid=8", JSON.stringify({ a: 2 })),
      ]),
    );
    await eventually(() => (wire.packets().some((p) => p.includes("rid=8")) ? true : undefined));
    expect(wire.packets().find((p) => p.includes("rid=8"))).toMatch(/^publish \$iothub\/twin\/res\/204\//);
  });

  it("telemetry carries mqtt-retain for RETAIN=1 and iothub-MessageType=Will for a will; other wills do nothing", async () => {
    const { registry } = await setup();
    const wire = new Wire();
    frontend!.handle(wire);
    const will = { topic: "devices/d1/messages/events/kind=will", payload: "gone" };
    wire.push(
      Buffer.concat([
        P.connect("d1", `${HOST}/d1/?api-version=2021-04-12`, token(), true, 60, will),
        P.publish("devices/d1/messages/events/a=1&b=x%20y", "r", { qos: 1, retain: true, messageId: 1 }),
        P.publish("devices/d1/messages/events/", "plain", { qos: 1, messageId: 2 }),
      ]),
    );
    await eventually(() => (telemetry.length === 2 ? true : undefined));
    expect(telemetry.map((m) => m.properties)).toEqual([{ a: "1", b: "x y", "mqtt-retain": "true" }, {}]);
    // An abrupt end (no DISCONNECT) makes the broker publish the will.
    wire.destroy();
    await eventually(() => (telemetry.length === 3 ? true : undefined));
    expect(telemetry[2]).toMatchObject({ properties: { kind: "will", "iothub-MessageType": "Will" } });
    expect(telemetry[2].body.toString()).toBe("gone");

    // A will aimed at the twin is dropped: the reported properties do not change.
    const before = registry.find("d1")!.twin.reported.version;
    const second = new Wire();
    frontend!.handle(second);
    second.push(
      P.connect("d1", `${HOST}/d1/?api-version=2021-04-12`, token(), true, 60, {
        topic: "$iothub/twin/PATCH/properties/reported/?$rid=9",
        payload: JSON.stringify({ fromWill: true }),
      }),
    );
    await eventually(() => (second.packets().includes("connack 0") ? true : undefined));
    second.destroy();
    await eventually(() => (lines.some((l) => l.includes("will message dropped")) ? true : undefined));
    await new Promise((r) => setTimeout(r, 20));
    expect(registry.find("d1")!.twin.reported.version).toBe(before);
  });
});
