import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deviceToken, rest, serviceToken } from "../../reliability/support.js";
import { mqttPacket as P, type RawClient, rawMqtt } from "../mqtt-raw.js";
import { startTestHub } from "../support.js";
import { consume } from "./support.js";

/**
 * End to end, raw MQTT device to the unmodified @azure/event-hubs consumer: what "Communicate with an IoT hub
 * using the MQTT protocol" says a back end receives for the MQTT flags the SDKs never set.
 * - RETAIN=1 on telemetry: "IoT Hub adds the mqtt-retain application property to the message ... instead of
 *   persisting the retain message, IoT Hub passes it to the backend app."
 * - A will on the telemetry topic, the connection lost without DISCONNECT: the will is sent as telemetry with
 *   the application property `iothub-MessageType: Will`.
 */

type Hub = Awaited<ReturnType<typeof startTestHub>>;

describe("MQTT flags as the back end sees them through the Event Hubs-compatible endpoint", () => {
  let hub: Hub;
  const raws: RawClient[] = [];
  const id = "dev-flags";

  beforeAll(async () => {
    hub = await startTestHub();
    const res = await rest(hub, "PUT", `/devices/${id}`, {
      auth: serviceToken(hub),
      body: JSON.stringify({ deviceId: id }),
    });
    expect(res.status).toBe(200);
    const key = res.json<{ authentication: { symmetricKey: { primaryKey: string } } }>().authentication
      .symmetricKey.primaryKey;
    const username = `${hub.hostName}/${id}/?api-version=2021-04-12`;
    const topic = `devices/${id}/messages/events/`;

    const retained = await rawMqtt(hub.port, hub.caPem);
    raws.push(retained);
    retained.write(
      P.connect(id, username, deviceToken(hub, id, key)),
      P.publish(`${topic}kind=retained`, '{"n":1}', { qos: 1, retain: true, messageId: 1 }),
      P.publish(`${topic}kind=plain`, '{"n":2}', { qos: 1, messageId: 2 }),
    );
    await retained.waitFor((r) => r.filter((p) => p.type === "puback").length === 2);
    retained.end();
    await retained.waitClosed();

    const willing = await rawMqtt(hub.port, hub.caPem);
    raws.push(willing);
    willing.write(
      P.connect(id, username, deviceToken(hub, id, key), true, 60, {
        topic: `${topic}kind=will`,
        payload: '{"n":3}',
      }),
    );
    await willing.waitFor((r) => r.some((p) => p.type === "connack"));
    expect(willing.received[0]?.codes).toEqual([0]);
    willing.end(); // no DISCONNECT: the will goes out
  }, 30_000);
  afterAll(async () => {
    for (const c of raws) c.end();
    await hub?.cleanup();
  });

  it("RETAIN=1 telemetry carries mqtt-retain=true; a lost connection's will carries iothub-MessageType=Will", async () => {
    const run = await consume(hub.caFile, {
      connectionString: hub.eventHubConnectionString,
      position: { offset: "-1" },
      count: 3,
    });
    expect(run.error).toBeUndefined();
    const byKind = new Map(
      run.events.map((e) => [(e.properties as Record<string, unknown>).kind, e as Record<string, unknown>]),
    );
    expect(byKind.get("retained")?.properties).toEqual({ kind: "retained", "mqtt-retain": "true" });
    expect(byKind.get("retained")?.body).toEqual({ n: 1 });
    expect(byKind.get("plain")?.properties).toEqual({ kind: "plain" });
    expect(byKind.get("will")?.properties).toEqual({ kind: "will", "iothub-MessageType": "Will" });
    expect(byKind.get("will")?.body).toEqual({ n: 3 });
    for (const e of run.events) {
      expect((e.systemProperties as Record<string, unknown>)["iothub-connection-device-id"]).toBe(id);
    }
  }, 30_000);
});
