import { ERROR_CODES, NUMERIC_ERROR_CODES } from "./protocol.js";

type ErrorCode = (typeof ERROR_CODES)[keyof typeof ERROR_CODES];

/** An error the hub answers with IoT Hub's status code and error body. */
export class HubError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }

  /**
   * IoT Hub's error body. The SDK splits `Message` on ";" and takes the code after "ErrorCode:",
   * so the human text must not contain ";".
   */
  body(): { Message: string; ExceptionMessage: string } {
    const text = this.message.replaceAll(";", ",");
    return { Message: `ErrorCode:${this.code};${text}`, ExceptionMessage: `Tracking ID:local-hub ${text}` };
  }
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
