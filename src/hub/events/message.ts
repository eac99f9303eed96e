import type { TelemetryMessage } from "../mqtt/telemetry.js";

/**
 * One device-to-cloud message as the Event Hubs-compatible endpoint keeps it: IoT Hub's system properties
 * split as they reach an Event Hubs reader ("Create and read IoT Hub messages", system properties table;
 * "Read device-to-cloud messages from the built-in endpoint"): the AMQP properties section (message-id,
 * correlation-id, user-id, to, absolute-expiry-time, content-type, content-encoding), the message annotations
 * IoT Hub stamps (`iothub-connection-device-id`, `iothub-enqueuedtime`, `iothub-message-source`...), and the
 * application properties the device set.
 */
export interface StoredProperties {
  /** AMQP properties section. */
  p: {
    message_id?: string;
    correlation_id?: string;
    user_id?: string;
    to?: string;
    absolute_expiry_time?: number;
    content_type?: string;
    content_encoding?: string;
  };
  /** IoT Hub's message annotations (besides x-opt-*, which come from the row). Dates as ms. */
  a: Record<string, string | number>;
  /** Application properties. */
  ap: Record<string, string>;
}

/**
 * The MQTT property bag's system properties ("Communicate with an IoT hub using the MQTT protocol", "Sending
 * device-to-cloud messages": `$.mid`, `$.cid`, `$.uid`, `$.to`, `$.exp`, `$.ct`, `$.ce`, `$.ctime`, and the
 * IoT Plug and Play `$.ifid`, `$.sub`, `$.schema`). Other `$.` keys are not application properties either:
 * IoT Hub reserves the prefix.
 */
export function storedProperties(
  message: TelemetryMessage,
  enqueuedMs: number,
  generationId: string,
): StoredProperties {
  const p: StoredProperties["p"] = {};
  const a: StoredProperties["a"] = {
    "iothub-connection-device-id": message.deviceId,
    "iothub-connection-auth-method": JSON.stringify({
      scope: "device",
      type: "sas",
      issuer: "iothub",
      acceptingIpFilterRule: null,
    }),
    "iothub-connection-auth-generation-id": generationId,
    "iothub-enqueuedtime": enqueuedMs,
    "iothub-message-source": "Telemetry",
  };
  const ap: StoredProperties["ap"] = {};
  for (const [key, value] of Object.entries(message.properties)) {
    switch (key) {
      case "$.mid":
        p.message_id = value;
        break;
      case "$.cid":
        p.correlation_id = value;
        break;
      case "$.uid":
        p.user_id = value;
        break;
      case "$.to":
        p.to = value;
        break;
      case "$.exp": {
        const ms = Date.parse(value);
        if (!Number.isNaN(ms)) p.absolute_expiry_time = ms;
        break;
      }
      case "$.ct":
        p.content_type = value;
        break;
      case "$.ce":
        p.content_encoding = value;
        break;
      case "$.ctime":
        a["iothub-creation-time-utc"] = value;
        break;
      case "$.ifid":
        a["iothub-interface-id"] = value;
        break;
      case "$.sub":
        a["dt-subject"] = value;
        break;
      case "$.schema":
        a["dt-dataschema"] = value;
        break;
      default:
        if (!key.startsWith("$.")) ap[key] = value;
    }
  }
  return { p, a, ap };
}

/** IoT Hub's default partition count of the built-in endpoint ("IoT Hub quotas": 2 to 128, default 4). */
export const DEFAULT_PARTITIONS = 4;

/**
 * The partition of a device: a stable hash (FNV-1a, 32 bits) of its UTF-8 id, so one device's messages keep
 * their order in one partition ("Read device-to-cloud messages from the built-in endpoint": "messages from a
 * device are always written to the same partition"), across restarts.
 */
export function partitionOf(deviceId: string, partitions: number): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(deviceId, "utf8")) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % partitions;
}
