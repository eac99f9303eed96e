import type { Client } from "aedes";
import type { createDownstream } from "../mqtt/downstream.js";
import { TOPICS } from "../protocol.js";
import type { DeviceRegistry } from "../registry/registry.js";
import type { MethodChannel, MethodEvents } from "./channel.js";
import { RID_MAX_LENGTH } from "./limits.js";

type Downstream = ReturnType<typeof createDownstream>;

/**
 * Direct methods on the MQTT side ("Understand and invoke direct methods from IoT Hub", "Handle a direct method on
 * a device", MQTT): the `MethodChannel` the invoker sends requests through, and the device's answers.
 *
 * - Requests go to the device's own connection only, on `$iothub/methods/POST/{method name}/?$rid={request id}`,
 *   at QoS 0 ("Method requests are QoS 0"), through the bounded downstream (downstream.ts), and only to a session
 *   subscribed to `$iothub/methods/POST/#` (DeviceRecord.methodsSubscribed, kept across reconnects of a
 *   persistent session like the twin subscriptions).
 * - Answers: "The device sends responses to `$iothub/methods/res/{status}/?$rid={request id}`" with the body set
 *   by the device. An answer is routed by the answering device's own ID and the request ID; one that matches no
 *   call of this device (never sent, another device's, already answered or timed out) is ignored and logged
 *   through the per-device log limit. The connection stays, as for any answer the hub cannot use.
 */
export function createMqttMethods(opts: {
  clients: ReadonlyMap<string, Client>;
  registry: DeviceRegistry;
  downstream: Downstream;
  events: MethodEvents | undefined;
  /** A line about one device (rate-limited per device by the caller). */
  log: (deviceId: string, line: string) => void;
}) {
  const { clients, registry, downstream, events, log } = opts;
  const live = (deviceId: string) => {
    const client = clients.get(deviceId);
    return client && !client.closed ? client : undefined;
  };

  const channel: MethodChannel = {
    isConnected: (deviceId) => live(deviceId) !== undefined,
    canReceiveMethods: (deviceId) =>
      live(deviceId) !== undefined && registry.find(deviceId)?.methodsSubscribed === true,
    sendMethodRequest(deviceId, methodName, rid, payload) {
      const client = live(deviceId);
      if (!client) return false;
      downstream.send(client, TOPICS.methodRequest(methodName, rid), payload);
      return true;
    },
  };

  /** A publish on `$iothub/methods/res/...` by `client`. */
  function handleResponse(client: Client, topic: string, payload: Buffer | string): void {
    const answer = parseResponseTopic(topic);
    if (!answer) {
      log(client.id, `MQTT ${client.id} method response ignored: malformed topic ${topic.slice(0, 200)}`);
      return;
    }
    const body = typeof payload === "string" ? Buffer.from(payload) : payload;
    if (!events?.answered(client.id, answer.rid, answer.status, body))
      log(
        client.id,
        `MQTT ${client.id} method response ignored: no direct method of this device waits for $rid=${answer.rid.slice(0, 64)}`,
      );
  }

  return { channel, handleResponse };
}

/**
 * `$iothub/methods/res/{status}/?$rid={rid}`: the status is a whole number within a 32-bit integer (the SDKs' and
 * IoT Hub's `status` is an int), the rid one of ours in length.
 */
export function parseResponseTopic(topic: string): { status: number; rid: string } | undefined {
  const rest = topic.slice(TOPICS.methodsResponsePrefix.length);
  const slash = rest.indexOf("/?");
  if (slash < 1) return undefined;
  const statusText = rest.slice(0, slash);
  if (!/^-?\d{1,10}$/.test(statusText) || Math.abs(Number(statusText)) > 2 ** 31 - 1) return undefined;
  const rid = new URLSearchParams(rest.slice(slash + 2)).get("$rid");
  if (!rid || rid.length > RID_MAX_LENGTH) return undefined;
  return { status: Number(statusText), rid };
}
