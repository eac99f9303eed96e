/**
 * The figures of direct methods, each with where it comes from ("Understand and invoke direct methods from IoT
 * Hub", below: the direct methods doc; "IoT Hub quotas and throttling", below: the quotas doc).
 */

/** "If timeout isn't provided, the default value of 30 seconds is used" (direct methods doc). */
export const DEFAULT_RESPONSE_TIMEOUT_S = 30;
/** "The minimum and maximum values for responseTimeoutInSeconds are 5 and 300 seconds" (direct methods doc). */
export const MIN_RESPONSE_TIMEOUT_S = 5;
export const MAX_RESPONSE_TIMEOUT_S = 300;
/**
 * connectTimeoutInSeconds: "The default value is 0, meaning that devices must already be online upon invocation
 * of a direct method. The maximum value for connectTimeoutInSeconds is 300 seconds" (direct methods doc).
 */
export const DEFAULT_CONNECT_TIMEOUT_S = 0;
export const MAX_CONNECT_TIMEOUT_S = 300;

/**
 * "The payload for method requests and responses is a JSON document up to 128 KB" (direct methods doc; the
 * quotas doc: "Maximum direct method payload size is 128 KB"). Counted as the UTF-8 bytes of the JSON text.
 */
export const MAX_PAYLOAD_BYTES = 128 * 1024;

/**
 * Direct methods waiting for an answer (or for their device to come online) at once, per device. IoT Hub has
 * such a limit ("403800 DeviceMaximumInflightMethodExceeded" in the error-code reference) but does not publish
 * its figure; 100 leaves room for any sane caller and bounds what one device can hold.
 */
export const MAX_PENDING_PER_DEVICE = 100;
/** Likewise for the whole hub; beyond it a call is answered 429 (the quotas doc: "IoT Hub responds with 429"). */
export const MAX_PENDING_PER_HUB = 10_000;
/**
 * Payload bytes held for calls that wait for their device to come online (connectTimeoutInSeconds). A call that
 * was sent keeps no payload, so this and the two counts above bound the memory of waiting calls (64 MiB).
 */
export const MAX_WAITING_PAYLOAD_BYTES = 64 * 1024 * 1024;

/**
 * MQTT topic names are at most 65,535 bytes (MQTT 3.1.1 §1.5.3), and the method name is part of one:
 * `$iothub/methods/POST/{method name}/?$rid={request id}`. The request ID is at most RID_MAX_LENGTH characters.
 */
export const RID_MAX_LENGTH = 32;
export const MAX_METHOD_NAME_BYTES = 65_535 - "$iothub/methods/POST//?$rid=".length - RID_MAX_LENGTH;
