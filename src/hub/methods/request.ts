import { errors } from "../errors.js";
import {
  DEFAULT_CONNECT_TIMEOUT_S,
  DEFAULT_RESPONSE_TIMEOUT_S,
  MAX_CONNECT_TIMEOUT_S,
  MAX_METHOD_NAME_BYTES,
  MAX_PAYLOAD_BYTES,
  MAX_RESPONSE_TIMEOUT_S,
  MIN_RESPONSE_TIMEOUT_S,
} from "./limits.js";

/** A validated direct method invocation ("Service - Devices: Invoke Method", CloudToDeviceMethod). */
export interface MethodCall {
  methodName: string;
  /** The payload as the JSON text the device receives ("null" when the caller sent none). */
  payload: string;
  responseTimeoutSeconds: number;
  connectTimeoutSeconds: number;
}

/**
 * Characters a method name may not contain. The direct methods doc: "When you invoke a direct method on a device,
 * property names and values can only contain US-ASCII printable alphanumeric, except any in the following set:
 * `{'$', '(', ')', '<', '>', '@', ',', ';', ':', '\\', '"', '/', '[', ']', '?', '=', '{', '}', SP, HT}`".
 * `#` and `+` are refused as well: the name is part of an MQTT topic name, where "the wildcard characters ...
 * MUST NOT be used within a Topic Name" (MQTT 3.1.1 §4.7.1); the doc does not say what IoT Hub does with them.
 */
const NAME_CHARS = /^[\x21-\x7e]+$/;
const NAME_EXCLUDED = /[$()<>@,;:\\"/[\]?={}#+]/;

/** The body of `POST /twins/{id}/methods`: `{methodName, payload, responseTimeoutInSeconds, connectTimeoutInSeconds}`. */
export function parseMethodCall(body: unknown): MethodCall {
  if (typeof body !== "object" || body === null || Array.isArray(body))
    throw errors.badRequest(
      "The body must be a JSON object: {methodName, payload, responseTimeoutInSeconds, connectTimeoutInSeconds}",
    );
  const fields = body as Record<string, unknown>;
  const { methodName } = fields;
  if (typeof methodName !== "string" || methodName === "")
    throw errors.badRequest("methodName is required: a non-empty string");
  if (!NAME_CHARS.test(methodName) || NAME_EXCLUDED.test(methodName))
    throw errors.badRequest(
      `methodName ${JSON.stringify(methodName.slice(0, 64))} is invalid: use printable US-ASCII characters other than $()<>@,;:\\"/[]?={}#+ and space`,
    );
  if (methodName.length > MAX_METHOD_NAME_BYTES)
    throw errors.badRequest(`methodName is longer than ${MAX_METHOD_NAME_BYTES} characters`);
  const responseTimeoutSeconds = seconds(
    fields.responseTimeoutInSeconds,
    "responseTimeoutInSeconds",
    DEFAULT_RESPONSE_TIMEOUT_S,
    MIN_RESPONSE_TIMEOUT_S,
    MAX_RESPONSE_TIMEOUT_S,
  );
  const connectTimeoutSeconds = seconds(
    fields.connectTimeoutInSeconds,
    "connectTimeoutInSeconds",
    DEFAULT_CONNECT_TIMEOUT_S,
    0,
    MAX_CONNECT_TIMEOUT_S,
  );
  // An absent payload is sent as JSON null, as the SDKs send it (azure-iothub DeviceMethod: "defaultPayload = null").
  const payload = JSON.stringify(fields.payload === undefined ? null : fields.payload);
  const bytes = Buffer.byteLength(payload);
  if (bytes > MAX_PAYLOAD_BYTES)
    throw errors.badRequest(
      `The payload is ${bytes} bytes of JSON: a direct method payload is at most ${MAX_PAYLOAD_BYTES} bytes (128 KB)`,
    );
  return { methodName, payload, responseTimeoutSeconds, connectTimeoutSeconds };
}

/** A whole number of seconds within [min, max]; absent or null means the default. */
function seconds(value: unknown, name: string, fallback: number, min: number, max: number): number {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max)
    throw errors.badRequest(`${name} must be a whole number of seconds from ${min} to ${max}`);
  return value;
}
