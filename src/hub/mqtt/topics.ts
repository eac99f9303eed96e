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

/** The only topic filters a device may subscribe to; every one of them is about the device itself. */
export function maySubscribe(deviceId: string, filter: string): boolean {
  return (
    filter === TOPICS.twinResponseFilter ||
    filter === TOPICS.twinDesiredFilter ||
    filter === TOPICS.methodsFilter ||
    filter === TOPICS.cloudToDeviceFilter(deviceId)
  );
}

/** Topics the hub itself sends down to a device; nothing else is ever forwarded to a client. */
export function isDownstream(deviceId: string, topic: string): boolean {
  return (
    topic.startsWith(TOPICS.twinResponsePrefix) ||
    topic.startsWith(TOPICS.twinDesiredPrefix) ||
    topic.startsWith("$iothub/methods/POST/") ||
    topic.startsWith(`devices/${deviceId}/messages/devicebound/`)
  );
}
