import type { Client as DeviceClient } from "azure-iot-device";
import type { Registry } from "azure-iothub";
import type { IClientOptions, MqttClient } from "mqtt";
import {
  deviceToken,
  mqttLogin,
  type RestResult,
  rest,
  serviceToken,
  subscribe,
} from "../../reliability/support.js";
import { connectDevice, eventually, type startTestHub } from "../support.js";

export type Hub = Awaited<ReturnType<typeof startTestHub>>;

/** Registers a device and returns its key and connection string. */
export async function newDevice(hub: Hub, registry: Registry, deviceId: string) {
  const { responseBody } = await registry.create({ deviceId });
  const key = responseBody.authentication?.symmetricKey?.primaryKey as string;
  return { key, connectionString: `HostName=${hub.hostName};DeviceId=${deviceId};SharedAccessKey=${key}` };
}

/** A device through azure-iot-device over MQTT whose `onDeviceMethod` handlers are registered before it returns. */
export async function sdkDevice(
  hub: Hub,
  connectionString: string,
  handlers: Record<string, (payload: unknown) => { status: number; payload?: unknown } | undefined>,
): Promise<DeviceClient> {
  const client = await connectDevice(connectionString, hub.caPem);
  for (const [name, handle] of Object.entries(handlers)) {
    client.onDeviceMethod(name, (req, res) => {
      const answer = handle(req.payload);
      if (answer) res.send(answer.status, answer.payload, () => {});
    });
  }
  return client;
}

/** A raw MQTT device (mqtt.js) logged in with its key; throws when refused. */
export async function rawDevice(
  hub: Hub,
  deviceId: string,
  key: string,
  extra: Partial<IClientOptions> = {},
): Promise<MqttClient> {
  const outcome = await mqttLogin(hub, deviceId, deviceToken(hub, deviceId, key), extra);
  if (!outcome.ok) throw new Error(`login refused: ${outcome.reason}`);
  return outcome.client;
}

/** Subscribes a raw device to method requests and collects them: `{ name, rid, payload }`. */
export async function receiveMethods(client: MqttClient) {
  const received: Array<{ name: string; rid: string; payload: string }> = [];
  client.on("message", (topic, payload) => {
    const m = /^\$iothub\/methods\/POST\/([^/]+)\/\?\$rid=(.+)$/.exec(topic);
    if (m) received.push({ name: m[1], rid: m[2], payload: payload.toString("utf8") });
  });
  const granted = await subscribe(client, "$iothub/methods/POST/#");
  if (granted[0] === 128) throw new Error("methods subscription refused");
  return received;
}

/** Answers a method request from a raw device. */
export function answer(
  client: MqttClient,
  status: number,
  rid: string,
  body: string | Buffer,
): Promise<void> {
  return new Promise((resolve, reject) =>
    client.publish(`$iothub/methods/res/${status}/?$rid=${rid}`, body, { qos: 0 }, (err) =>
      err ? reject(err) : resolve(),
    ),
  );
}

/** `POST /twins/{id}/methods` as raw HTTPS, with a service token of `policy`. */
export function invokeRaw(
  hub: Hub,
  deviceId: string,
  body: unknown,
  opts: { policy?: string; auth?: string; raw?: string } = {},
): Promise<RestResult> {
  return rest(hub, "POST", `/twins/${encodeURIComponent(deviceId)}/methods`, {
    auth: opts.auth ?? serviceToken(hub, opts.policy ?? "iothubowner"),
    body: opts.raw ?? JSON.stringify(body),
  });
}

/** The numeric code and text IoT Hub puts inside a direct-method error's `Message`. */
export function methodError(result: { body: string }): { errorCode: number; message: string } {
  return JSON.parse(JSON.parse(result.body).Message);
}

/** Waits until the hub holds no direct method call any more (nothing leaked). */
export function noPendingMethods(hub: Hub, ms = 10_000) {
  return eventually(() => (hub.pendingMethods === 0 ? true : undefined), ms);
}
