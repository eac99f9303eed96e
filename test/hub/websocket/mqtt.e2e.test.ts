import { Client as DeviceClient, Message } from "azure-iot-device";
import { MqttWs } from "azure-iot-device-mqtt";
import type { Registry } from "azure-iothub";
import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeToken } from "../../../src/hub/auth/sas.js";
import { TUTORIAL_DEVICE } from "../../../src/hub/index.js";
import { selfSignedDeviceCertificate } from "../../../src/hub/tls/device-certs.js";
import { consume } from "../amqp/support.js";
import {
  eventually,
  getDeviceTwin,
  registryFor,
  reportProperties,
  startTestHub,
  twinOf,
} from "../support.js";
import { connected, connectWsDevice, mqttWs, PortAgent } from "./support.js";

type Hub = Awaited<ReturnType<typeof startTestHub>>;
// biome-ignore lint/suspicious/noExplicitAny: identities carry fields the SDK's Device type does not declare
type AnyDevice = any;

describe("MQTT over WebSockets (wss://<host>/$iothub/websocket, subprotocol mqtt)", () => {
  let hub: Hub;
  let registry: Registry;
  const lines: string[] = [];
  const devices: DeviceClient[] = [];
  const raw: MqttClient[] = [];

  async function newDevice(deviceId: string) {
    const { responseBody } = await registry.create({ deviceId });
    const key = responseBody.authentication?.symmetricKey?.primaryKey as string;
    return { key, connectionString: `HostName=${hub.hostName};DeviceId=${deviceId};SharedAccessKey=${key}` };
  }
  async function open(connectionString: string, options?: Record<string, unknown>) {
    const client = await connectWsDevice(hub, connectionString, options);
    devices.push(client);
    return client;
  }

  beforeAll(async () => {
    hub = await startTestHub({ inMemory: true, quiet: false, log: (l) => lines.push(l) });
    registry = registryFor(hub.serviceConnectionString, hub.caPem);
  });
  afterAll(async () => {
    for (const c of raw) c.end(true);
    await Promise.all(devices.map((c) => c.close().catch(() => {})));
    await hub.cleanup();
  });

  it("the unmodified device SDK (MqttWs): twin GET, reported PATCH with the new $version, Connected", async () => {
    const client = await open(hub.deviceConnectionString());
    const twin = await getDeviceTwin(client);
    const before = twin.properties.reported.$version as number;
    await reportProperties(twin, { connectivity: { type: "websocket" } });
    const serviceTwin = await twinOf(registry, TUTORIAL_DEVICE.deviceId);
    expect(serviceTwin.properties.reported.connectivity).toEqual({ type: "websocket" });
    expect(serviceTwin.properties.reported.$version).toBe(before + 1);
    expect(serviceTwin.connectionState).toBe("Connected");
    expect(lines).toContain(`MQTT ${TUTORIAL_DEVICE.deviceId} connected`);
  });

  it("pushes desired-property updates to a device on MqttWs", async () => {
    const { connectionString } = await newDevice("ws-desired");
    const client = await open(connectionString);
    const twin = await getDeviceTwin(client);
    const received: Array<Record<string, unknown>> = [];
    twin.on("properties.desired", (delta: Record<string, unknown>) => received.push(delta));
    await eventually(() => (received.length > 0 ? true : undefined), 10_000);
    await registry.updateTwin("ws-desired", { properties: { desired: { interval: 42 } } }, "*");
    const update = await eventually(() => received.find((d) => d.interval === 42), 10_000);
    expect(update.$version).toBe(2);
    expect(twin.properties.desired.interval).toBe(42);
  });

  it("telemetry sent over MqttWs is read back from the Event Hubs-compatible endpoint", async () => {
    const { connectionString } = await newDevice("ws-telemetry");
    const client = await open(connectionString);
    const message = new Message(JSON.stringify({ over: "websocket" }));
    message.messageId = "ws-1";
    message.properties.add("transport", "mqtt-ws");
    await client.sendEvent(message);
    const run = await consume(hub.caFile, {
      connectionString: hub.eventHubConnectionString,
      position: { offset: "-1" },
      count: 1,
      timeoutMs: 30_000,
    });
    expect(run.error).toBeUndefined();
    const event = run.events[0] as unknown as {
      body: unknown;
      properties: Record<string, unknown>;
      systemProperties: Record<string, unknown>;
    };
    expect(event.body).toEqual({ over: "websocket" });
    expect(event.properties.transport).toBe("mqtt-ws");
    expect(event.systemProperties["iothub-connection-device-id"]).toBe("ws-telemetry");
  }, 60_000);

  it("refuses a wrong key over WebSockets as over TLS (SDK: UnauthorizedError)", async () => {
    await newDevice("ws-wrong-key");
    const wrong = `HostName=${hub.hostName};DeviceId=ws-wrong-key;SharedAccessKey=${Buffer.from("not-the-key-not-the-key-not-the-k").toString("base64")}`;
    const error = await connectWsDevice(hub, wrong).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(error?.constructor.name).toBe("UnauthorizedError");
  });

  it("mqtt.js over wss://: twin GET answered, telemetry acknowledged (PUBACK)", async () => {
    const { key } = await newDevice("ws-mqttjs");
    const client = mqttWs(hub, "ws-mqttjs", key);
    raw.push(client);
    await connected(client);
    const answer = new Promise<string>((resolve) => client.on("message", (topic) => resolve(topic)));
    await new Promise((resolve, reject) =>
      client.subscribe("$iothub/twin/res/#", { qos: 0 }, (e, granted) => (e ? reject(e) : resolve(granted))),
    );
    client.publish("$iothub/twin/GET/?$rid=7", "");
    expect(await answer).toBe("$iothub/twin/res/200/?$rid=7");
    await new Promise<void>((resolve, reject) =>
      client.publish("devices/ws-mqttjs/messages/events/a=1", "hello", { qos: 1 }, (e) =>
        e ? reject(e) : resolve(),
      ),
    );
    // A topic outside the device's own closes the connection, as over TLS.
    const closed = new Promise<void>((resolve) => client.once("close", () => resolve()));
    client.publish("devices/someone-else/messages/events/", "x", { qos: 1 });
    await closed;
  });

  it("a SAS token's expiry ends the WebSocket connection, as it ends an MQTT/TLS one", async () => {
    const { key } = await newDevice("ws-expiry");
    const expiry = Math.floor(Date.now() / 1000) + 6;
    const client = mqttWs(hub, "ws-expiry", key, {
      password: makeToken(key, `${hub.hostName}/devices/ws-expiry`, expiry),
    });
    raw.push(client);
    await connected(client);
    const closedAt = await new Promise<number>((resolve) => client.once("close", () => resolve(Date.now())));
    expect(closedAt).toBeGreaterThanOrEqual(expiry * 1000 - 50);
    expect(lines).toContain("MQTT ws-expiry disconnected: its SAS token expired");
  }, 30_000);

  it("X.509: a device presenting its certificate under the WebSocket logs in (MqttWs, x509=true)", async () => {
    const pair = await selfSignedDeviceCertificate("ws-x509");
    await registry.create({
      deviceId: "ws-x509",
      authentication: { type: "selfSigned", x509Thumbprint: { primaryThumbprint: pair.sha256 } },
    } as AnyDevice);
    const client = DeviceClient.fromConnectionString(
      `HostName=${hub.hostName};DeviceId=ws-x509;x509=true`,
      MqttWs,
    );
    await client.setOptions({
      cert: pair.cert,
      key: pair.key,
      ca: hub.caPem,
      mqtt: { webSocketAgent: new PortAgent(hub.port) },
    });
    await client.open();
    devices.push(client);
    const twin = await getDeviceTwin(client);
    await reportProperties(twin, { via: "x509-ws" });
    expect((await twinOf(registry, "ws-x509")).properties.reported.via).toBe("x509-ws");
    expect(lines).toContain("MQTT ws-x509 connected (X.509 thumbprint)");

    // Another device's certificate is refused (CONNACK 5), as over TLS.
    const other = await selfSignedDeviceCertificate("ws-x509");
    const refused = DeviceClient.fromConnectionString(
      `HostName=${hub.hostName};DeviceId=ws-x509;x509=true`,
      MqttWs,
    );
    await refused.setOptions({
      cert: other.cert,
      key: other.key,
      ca: hub.caPem,
      mqtt: { webSocketAgent: new PortAgent(hub.port) },
    });
    await expect(refused.open()).rejects.toThrow(/not authorized/i);
    await refused.close().catch(() => {});
  });
});
