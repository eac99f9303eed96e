import { TOPICS } from "../protocol.js";

/** What a device publish means to the hub ("Communicate with an IoT hub using the MQTT protocol"). */
export type DeviceRequest =
  | { kind: "twinGet"; rid: string }
  | { kind: "reportedPatch"; rid: string }
  | { kind: "telemetry" }
  | { kind: "methodResponse" }
  | { kind: "forbidden" };

/** `$rid` is how a device pairs each twin response with its request. */
function ridOf(topic: string, prefix: string): string | undefined {
  const query = topic.slice(prefix.length);
  if (!query.startsWith("?")) return undefined;
  const rid = new URLSearchParams(query.slice(1)).get("$rid");
  return rid && rid.length <= 128 ? rid : undefined;
}

export function classifyPublish(deviceId: string, topic: string): DeviceRequest {
  if (topic.startsWith(TOPICS.twinGetPrefix)) {
    const rid = ridOf(topic, TOPICS.twinGetPrefix);
    return rid === undefined ? { kind: "forbidden" } : { kind: "twinGet", rid };
  }
  if (topic.startsWith(TOPICS.twinReportedPrefix)) {
    const rid = ridOf(topic, TOPICS.twinReportedPrefix);
    return rid === undefined ? { kind: "forbidden" } : { kind: "reportedPatch", rid };
  }
  // A device sends telemetry only as itself: devices/<its own id>/messages/events/...
  if (
    topic.startsWith(TOPICS.telemetryPrefix(deviceId)) ||
    topic === TOPICS.telemetryPrefix(deviceId).slice(0, -1)
  ) {
    return { kind: "telemetry" };
  }
  if (topic.startsWith(TOPICS.methodsResponsePrefix)) return { kind: "methodResponse" };
  return { kind: "forbidden" };
}

/** What a granted subscription lets the hub send the device. */
export type Delivery = "twinResponses" | "desiredUpdates" | "methods" | "cloudToDevice";

/**
 * The topic filters IoT Hub accepts ("Communicate with an IoT hub using the MQTT protocol": IoT Hub "only
 * supports the documented topic names and topic filters"), and what each one delivers; undefined = refused.
 * `#` is accepted as Microsoft's samples use it (IoT Hub treats it as the device's cloud-to-device filter);
 * per MQTT 3.1.1 §4.7.2 (MQTT-4.7.2-1) a filter starting with a wildcard never matches `$` topics, so `#`
 * brings no twin or method traffic. The device's own filter is compared literally: a device ID may contain
 * `+` or `#` ("Understand the identity registry"), and a device named `+` must not get a wildcard.
 */
export function deliveryOf(deviceId: string, filter: string): Delivery | undefined {
  switch (filter) {
    case TOPICS.twinResponseFilter:
      return "twinResponses";
    case TOPICS.twinDesiredFilter:
      return "desiredUpdates";
    case TOPICS.methodsFilter:
      return "methods";
    case "#":
    case TOPICS.cloudToDeviceFilter(deviceId):
      return "cloudToDevice";
    default:
      return undefined;
  }
}

/**
 * Topics the hub itself sends down to this device; nothing else is ever forwarded to a client. Compared
 * literally (no wildcard matching), so no device ID can widen what it receives.
 */
export function isDownstream(deviceId: string, topic: string): boolean {
  return (
    topic.startsWith(TOPICS.twinResponsePrefix) ||
    topic.startsWith(TOPICS.twinDesiredPrefix) ||
    topic.startsWith("$iothub/methods/POST/") ||
    topic.startsWith(`devices/${deviceId}/messages/devicebound/`)
  );
}
