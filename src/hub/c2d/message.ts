import { TOPICS } from "../protocol.js";

/**
 * "Send cloud-to-device messages from an IoT hub", "Message feedback": the service asks for feedback with the
 * `iothub-ack` application property: `none` (default), `positive` (Completed), `negative` (Dead lettered),
 * `full` (either).
 */
export const ACK_MODES = ["none", "positive", "negative", "full"] as const;
export type AckMode = (typeof ACK_MODES)[number];

/** A cloud-to-device message as the hub keeps it: the properties the device gets, and its body. */
export interface C2dProperties {
  messageId?: string;
  correlationId?: string;
  userId?: string;
  to: string;
  /** The expiry the service set (absolute-expiry-time), ms since the epoch; absent when the hub's default applies. */
  expiry?: number;
  contentType?: string;
  contentEncoding?: string;
  /** Application properties as the service set them (`iothub-ack` included); null values stay null. */
  app: Record<string, string | null>;
}

/** "Cloud-to-device messaging: Maximum message size 64 KB" ("IoT Hub quotas and throttling", other limits). */
export const MAX_MESSAGE_BYTES = 64 * 1024;

/**
 * The size IoT Hub counts ("Create and read IoT Hub messages", message size: "the sum of the body size in
 * bytes, the size in bytes of all the values of the message system properties, and the size in bytes of all
 * user property names and values").
 */
export function messageSize(props: C2dProperties, body: Buffer): number {
  let size = body.length;
  const system = [
    props.messageId,
    props.correlationId,
    props.userId,
    props.to,
    props.contentType,
    props.contentEncoding,
    props.expiry === undefined ? undefined : new Date(props.expiry).toISOString(),
  ];
  for (const v of system) if (v !== undefined) size += Buffer.byteLength(v);
  for (const [k, v] of Object.entries(props.app)) size += Buffer.byteLength(k) + Buffer.byteLength(v ?? "");
  return size;
}

const enc = encodeURIComponent;

/**
 * The topic a device receives a message on ("Communicate with an IoT hub using the MQTT protocol", receiving
 * cloud-to-device messages): `devices/{device-id}/messages/devicebound/{property-bag}`, where "Only application
 * properties and user-settable system properties (such as messageId or correlationId) are included in the
 * property bag. System property names have the prefix $, application properties use the original property name
 * with no prefix", url-encoded (IoT Hub writes `%24.mid=...&%24.to=%2Fdevices%2F...`). A null value is the key
 * alone, an empty string `key=` (the doc's representation table). Without properties, the topic ends in `/`.
 */
export function deviceboundTopic(deviceId: string, props: C2dProperties): string {
  const pairs: string[] = [];
  const system: Array<[string, string | undefined]> = [
    ["$.mid", props.messageId],
    ["$.cid", props.correlationId],
    ["$.to", props.to],
    ["$.exp", props.expiry === undefined ? undefined : new Date(props.expiry).toISOString()],
    ["$.uid", props.userId],
    ["$.ct", props.contentType],
    ["$.ce", props.contentEncoding],
  ];
  for (const [k, v] of system) if (v !== undefined) pairs.push(`${enc(k)}=${enc(v)}`);
  for (const [k, v] of Object.entries(props.app)) pairs.push(v === null ? enc(k) : `${enc(k)}=${enc(v)}`);
  return `${TOPICS.cloudToDevicePrefix(deviceId)}${pairs.join("&")}`;
}

/** The `to` the service SDKs set: `/devices/{url-encoded device id}/messages/devicebound`. */
export function deviceOfAddress(to: string): string | undefined {
  const m = /^\/devices\/([^/]+)\/messages\/devicebound$/i.exec(to);
  if (!m) return undefined;
  try {
    return decodeURIComponent(m[1]);
  } catch {
    return undefined;
  }
}
