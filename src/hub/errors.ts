import { ERROR_CODES, NUMERIC_ERROR_CODES } from "./protocol.js";

type ErrorCode = (typeof ERROR_CODES)[keyof typeof ERROR_CODES];

/** An error the hub answers with IoT Hub's status code and error body. */
export class HubError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
    /** Set for errors IoT Hub reports with its numeric code inside `Message` (see `body`). */
    readonly detail?: { errorCode: number; info: Record<string, unknown> },
  ) {
    super(message);
  }

  /**
   * IoT Hub's error body. The SDK splits `Message` on ";" and takes the code after "ErrorCode:",
   * so the human text must not contain ";".
   *
   * Direct-method errors come in IoT Hub's other shape: `Message` holds a JSON document with the numeric
   * code, `{"Message":"{\"errorCode\":404103,\"trackingId\":...,\"message\":...,\"info\":{...},
   * \"timestampUtc\":...}","ExceptionMessage":""}`, next to `iothub-errorcode: DeviceNotOnline`. That is what
   * IoT Hub answers (quoted in the SDKs' issue trackers) and what the C# service SDK parses (it matches the
   * numeric code with the header); the Node SDK maps these by HTTP status alone.
   */
  body(): { Message: string; ExceptionMessage: string } {
    const text = this.message.replaceAll(";", ",");
    if (this.detail) {
      const inner = {
        errorCode: this.detail.errorCode,
        trackingId: "local-hub",
        message: text,
        info: this.detail.info,
        timestampUtc: new Date().toISOString(),
      };
      return { Message: JSON.stringify(inner), ExceptionMessage: "" };
    }
    return { Message: `ErrorCode:${this.code};${text}`, ExceptionMessage: `Tracking ID:local-hub ${text}` };
  }
}

/** A timeout as IoT Hub writes it in a direct-method error's `info`: "00:00:30". */
function timespan(seconds: number): string {
  const two = (n: number) => String(Math.floor(n)).padStart(2, "0");
  return `${two(seconds / 3600)}:${two((seconds % 3600) / 60)}:${two(seconds % 60)}`;
}

/** The one error factory: every error the hub sends is made here. */
export const errors = {
  badRequest: (message: string) => new HubError(400, ERROR_CODES.argumentInvalid, message),
  badQuery: (message: string) => new HubError(400, ERROR_CODES.sqlQueryInvalid, message),
  badContinuation: (message: string) => new HubError(400, ERROR_CODES.invalidContinuationToken, message),
  badApiVersion: (message: string) => new HubError(400, ERROR_CODES.invalidProtocolVersion, message),
  unauthorized: (message: string) => new HubError(401, ERROR_CODES.iotHubUnauthorizedAccess, message),
  deviceNotFound: (deviceId: string) =>
    new HubError(
      404,
      ERROR_CODES.deviceNotFound,
      `Device ${JSON.stringify(deviceId)} is not registered in this hub`,
    ),
  /** "404001 DeviceNotFound ... The device either isn't registered or is disabled" (error-code reference). */
  deviceDisabled: (deviceId: string) =>
    new HubError(404, ERROR_CODES.deviceNotFound, `Device ${JSON.stringify(deviceId)} is disabled`),
  routeNotFound: (what: string) =>
    new HubError(404, ERROR_CODES.notFound, `${what} is not an operation of this hub`),
  deviceExists: (deviceId: string) =>
    new HubError(
      409,
      ERROR_CODES.deviceAlreadyExists,
      `A device with ID ${JSON.stringify(deviceId)} is already registered`,
    ),
  staleEtag: (what: string) =>
    new HubError(
      412,
      ERROR_CODES.preconditionFailed,
      `Precondition failed: the ${what} etag does not match the current one`,
    ),
  tooLarge: (message: string) => new HubError(413, ERROR_CODES.requestEntityTooLarge, message),
  /** "If you hit the limit, IoT Hub responds with error code 429" ... "429 ThrottlingException" (quotas and throttling). */
  throttled: (what: string, tier: string) =>
    new HubError(
      429,
      ERROR_CODES.throttlingException,
      `${what} are over the ${tier} tier's throttle (local-hub --throttle ${tier}), back off and retry`,
    ),
  internal: (message: string) => new HubError(500, ERROR_CODES.serverError, message),

  // Direct methods ("Understand and invoke direct methods from IoT Hub"; numeric codes from "Troubleshoot
  // Azure IoT Hub error codes"). See methods/invoker.ts for when each is answered.
  /** "404103 DeviceNotOnline": not connected, or connected without a direct method subscription. */
  deviceNotOnline: (message: string, connectTimeoutSeconds: number) =>
    new HubError(404, ERROR_CODES.deviceNotOnline, message, {
      errorCode: 404103,
      info: { timeout: timespan(connectTimeoutSeconds) },
    }),
  /** "504101 GatewayTimeout": no answer within responseTimeoutInSeconds. */
  gatewayTimeout: (responseTimeoutSeconds: number) =>
    new HubError(504, ERROR_CODES.gatewayTimeout, "Timed out waiting for the response from device.", {
      errorCode: 504101,
      info: { timeout: timespan(responseTimeoutSeconds) },
    }),
  /** "503102 DeviceUnavailable": the device's connection ended while the call waited for its answer. */
  deviceUnavailable: (message: string) =>
    new HubError(503, ERROR_CODES.deviceUnavailable, message, { errorCode: 503102, info: {} }),
  /** "400027 ConnectionForcefullyClosedOnNewConnection": another connection with the same identity took over. */
  connectionReplaced: (message: string) =>
    new HubError(400, ERROR_CODES.connectionForcefullyClosedOnNewConnection, message, {
      errorCode: 400027,
      info: {},
    }),
  /** "403800 DeviceMaximumInflightMethodExceeded". */
  methodsInFlight: (message: string) =>
    new HubError(403, ERROR_CODES.deviceMaximumInflightMethodExceeded, message, {
      errorCode: 403800,
      info: {},
    }),
  /** "502000 GenericBadGateway": the device's answer cannot be passed on (not JSON, over 128 KB). */
  badDeviceResponse: (message: string) =>
    new HubError(502, ERROR_CODES.genericBadGateway, message, { errorCode: 502000, info: {} }),
  /** "503001 ServiceUnavailable": the hub is stopping. */
  unavailable: (message: string) =>
    new HubError(503, ERROR_CODES.serviceUnavailable, message, { errorCode: 503001, info: {} }),
  /** The hub's own cap on direct methods waiting at once: 429 like every IoT Hub throttle. */
  tooManyMethods: (message: string) => new HubError(429, ERROR_CODES.throttlingException, message),
};

/**
 * The body of a twin error response over MQTT (`$iothub/twin/res/<status>/?$rid=`). The device SDKs treat a
 * response as failed when its body has an `errorCode` (azure-iot-device-mqtt MqttTwinClient,
 * SRS_NODE_DEVICE_MQTT_TWIN_CLIENT_41_001); IoT Hub uses its numeric codes there ("IoT Hub API common error codes").
 */
export function twinErrorBody(status: number, message: string): string {
  return JSON.stringify({
    errorCode: NUMERIC_ERROR_CODES[status] ?? status * 1000,
    trackingId: "local-hub",
    message,
    timestampUtc: new Date().toISOString(),
  });
}
