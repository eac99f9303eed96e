/**
 * Device-to-cloud messages ("Communicate with an IoT hub using the MQTT protocol", "Sending device-to-cloud
 * messages"): the topic is `devices/{device-id}/messages/events/{property-bag}` with url-encoded properties.
 * "If a device sends a message with the RETAIN flag set to 1, IoT Hub adds the mqtt-retain application property
 * to the message ... instead of persisting the retain message, IoT Hub passes it to the backend app."
 * A will message sent on that topic is forwarded the same way, marked `iothub-MessageType: Will`.
 */
export interface TelemetryMessage {
  deviceId: string;
  properties: Record<string, string>;
  body: Buffer;
}

export function telemetryMessage(
  deviceId: string,
  topic: string,
  payload: Buffer,
  flags: { retain: boolean; will: boolean },
): TelemetryMessage {
  const prefix = `devices/${deviceId}/messages/events/`;
  const bag = topic.length > prefix.length ? topic.slice(prefix.length) : "";
  const properties: Record<string, string> = {};
  // URLSearchParams never throws: a malformed escape stays as written.
  for (const [key, value] of new URLSearchParams(bag.startsWith("?") ? bag.slice(1) : bag)) {
    if (key !== "") properties[key] = value;
  }
  if (flags.retain) properties["mqtt-retain"] = "true";
  // "The message has the iothub-MessageType property with a value of Will assigned to it."
  if (flags.will) properties["iothub-MessageType"] = "Will";
  return { deviceId, properties, body: payload };
}
