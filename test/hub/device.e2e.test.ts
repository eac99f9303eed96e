import type { Client as DeviceClient } from "azure-iot-device";
import type { Registry } from "azure-iothub";
import { type MqttClient, connect as mqttConnect } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeToken } from "../../src/hub/auth/sas.js";
import {
  connectDevice,
  eventually,
  getDeviceTwin,
  registryFor,
  reportProperties,
  sdkErrorOf,
  startTestHub,
  twinOf,
} from "./support.js";

type Hub = Awaited<ReturnType<typeof startTestHub>>;

describe("local hub device side, through the real azure-iot-device MQTT client", () => {
  let hub: Hub;
  let registry: Registry;
  const opened: DeviceClient[] = [];

  async function newDevice(deviceId: string) {
    const { responseBody } = await registry.create({ deviceId });
    const key = responseBody.authentication?.symmetricKey?.primaryKey as string;
    return { key, connectionString: `HostName=${hub.hostName};DeviceId=${deviceId};SharedAccessKey=${key}` };
  }

  async function open(connectionString: string) {
    const client = await connectDevice(connectionString, hub.caPem);
    opened.push(client);
    return client;
  }

  beforeAll(async () => {
    hub = await startTestHub();
    registry = registryFor(hub.serviceConnectionString, hub.caPem);
  });
  afterAll(async () => {
    await Promise.all(opened.map((c) => c.close().catch(() => {})));
    await hub.cleanup();
  });

  it("connects, reads its twin, reports properties; the service sees them and the new $version", async () => {
    const client = await open(hub.deviceConnectionString());
    const twin = await getDeviceTwin(client);
    const before = twin.properties.reported.$version as number;
    await reportProperties(twin, { connectivity: { type: "cellular" } });
    const serviceTwin = await twinOf(registry, "myDeviceId");
    expect(serviceTwin.properties.reported.connectivity).toEqual({ type: "cellular" });
    expect(serviceTwin.properties.reported.$version).toBe(before + 1);
    expect(serviceTwin.connectionState).toBe("Connected");
  });

  it("pushes desired-property updates to a subscribed device", async () => {
    const { connectionString } = await newDevice("dev-desired");
    const client = await open(connectionString);
    const twin = await getDeviceTwin(client);
    const received: Array<Record<string, unknown>> = [];
    twin.on("properties.desired", (delta: Record<string, unknown>) => received.push(delta));
    // The SDK emits the current desired state once on subscribe; wait for that before patching.
    await eventually(() => (received.length > 0 ? true : undefined));
    await registry.updateTwin("dev-desired", { properties: { desired: { location: "Redmond43" } } }, "*");
    const update = await eventually(() => received.find((d) => d.location === "Redmond43"));
    expect(update.$version).toBe(2);
    expect(twin.properties.desired.location).toBe("Redmond43");
  });

  it("refuses a wrong key, another device's key and a disabled device", async () => {
    const a = await newDevice("dev-auth-a");
    const b = await newDevice("dev-auth-b");
    const wrongKey = Buffer.from("this-is-not-the-right-key-at-all").toString("base64");
    // The device SDK reports a refused CONNECT (CONNACK 4 or 5) as its typed UnauthorizedError.
    const wrong = `HostName=${hub.hostName};DeviceId=dev-auth-a;SharedAccessKey=${wrongKey}`;
    expect(await sdkErrorOf(open(wrong))).toBe("UnauthorizedError");
    const borrowed = `HostName=${hub.hostName};DeviceId=dev-auth-a;SharedAccessKey=${b.key}`;
    expect(await sdkErrorOf(open(borrowed))).toBe("UnauthorizedError");
    await registry.update({ deviceId: "dev-auth-a", status: "disabled" });
    expect(await sdkErrorOf(open(a.connectionString))).toBe("UnauthorizedError");
    expect((await twinOf(registry, "dev-auth-a")).connectionState).toBe("Disconnected");
  });

  it("disconnects a connected device when it is disabled", async () => {
    const { connectionString } = await newDevice("dev-kick");
    await open(connectionString);
    expect((await twinOf(registry, "dev-kick")).connectionState).toBe("Connected");
    await registry.update({ deviceId: "dev-kick", status: "disabled" });
    await eventually(async () =>
      (await twinOf(registry, "dev-kick")).connectionState === "Disconnected" ? true : undefined,
    );
  });

  describe("raw MQTT: a device reaches only its own topics", () => {
    let key: string;
    const raw: MqttClient[] = [];
    const rawConnect = (deviceId: string, password: string) =>
      new Promise<MqttClient>((resolve, reject) => {
        const c = mqttConnect(`mqtts://localhost:${hub.port}`, {
          clientId: deviceId,
          username: `${hub.hostName}/${deviceId}/?api-version=2021-04-12`,
          password,
          ca: hub.caPem,
          reconnectPeriod: 0,
          protocolVersion: 4,
        });
        raw.push(c);
        c.once("connect", () => resolve(c));
        c.once("error", reject);
        c.once("close", () => reject(new Error("closed")));
      });
    const tokenFor = (deviceId: string, k: string, expiry = Math.floor(Date.now() / 1000) + 600) =>
      makeToken(k, `${hub.hostName}/devices/${deviceId}`, expiry);

    beforeAll(async () => {
      key = (await newDevice("dev-raw")).key;
      await newDevice("dev-other");
    });
    afterAll(() => {
      for (const c of raw) c.end(true);
    });

    it("refuses an expired token with CONNACK 4", async () => {
      const err = await rawConnect(
        "dev-raw",
        tokenFor("dev-raw", key, Math.floor(Date.now() / 1000) - 5),
      ).catch((e) => e);
      expect(String(err?.message ?? err)).toMatch(/Bad username or password|closed/);
    });

    it("refuses a token whose audience is another device", async () => {
      const err = await rawConnect("dev-other", tokenFor("dev-raw", key)).catch((e) => e);
      expect(err).toBeInstanceOf(Error);
    });

    it("refuses subscriptions to another device's topics (SUBACK 0x80) and keeps serving", async () => {
      const c = await rawConnect("dev-raw", tokenFor("dev-raw", key));
      const granted = await new Promise<Array<{ qos: number }>>((resolve, reject) =>
        c.subscribe("devices/dev-other/messages/devicebound/#", { qos: 1 }, (err, g) =>
          err ? reject(err) : resolve(g ?? []),
        ),
      );
      expect(granted[0].qos).toBe(128);
      const ok = await new Promise<Array<{ qos: number }>>((resolve, reject) =>
        c.subscribe("$iothub/twin/res/#", { qos: 0 }, (err, g) => (err ? reject(err) : resolve(g ?? []))),
      );
      expect(ok[0].qos).toBe(0);
    });

    it("closes the connection of a device that publishes as another device", async () => {
      const c = await rawConnect("dev-raw", tokenFor("dev-raw", key));
      const closed = new Promise<void>((resolve) => c.once("close", () => resolve()));
      c.publish("devices/dev-other/messages/events/", "spoof", { qos: 1 });
      await closed;
    });

    it("answers a bad reported patch with status 400 on the response topic and writes nothing", async () => {
      const before = (await twinOf(registry, "dev-raw")).properties.reported.$version;
      const c = await rawConnect("dev-raw", tokenFor("dev-raw", key));
      await new Promise<void>((resolve, reject) =>
        c.subscribe("$iothub/twin/res/#", (err) => (err ? reject(err) : resolve())),
      );
      const response = new Promise<string>((resolve) => c.on("message", (topic) => resolve(topic)));
      c.publish("$iothub/twin/PATCH/properties/reported/?$rid=7", "{not json");
      expect(await response).toMatch(/^\$iothub\/twin\/res\/400\/\?\$rid=7/);
      expect((await twinOf(registry, "dev-raw")).properties.reported.$version).toBe(before);
    });

    it("accepts telemetry on the device's own topic", async () => {
      const c = await rawConnect("dev-raw", tokenFor("dev-raw", key));
      await new Promise<void>((resolve, reject) =>
        c.publish("devices/dev-raw/messages/events/a=1", "{}", { qos: 1 }, (e) =>
          e ? reject(e) : resolve(),
        ),
      );
      expect(c.connected).toBe(true);
    });
  });
});
