/**
 * What the service side of direct methods needs from a device-side front end, and what that front end tells it.
 * The MQTT front end implements `MethodChannel` (methods/mqtt.ts) and reports to a `MethodEvents`; the invoker
 * (invoker.ts) uses the one and is the other, so no REST code reaches into the MQTT broker.
 */
export interface MethodChannel {
  /** The device has a live connection (whatever its subscriptions). */
  isConnected(deviceId: string): boolean;
  /** The device has a live connection whose session is subscribed to method requests. */
  canReceiveMethods(deviceId: string): boolean;
  /** Sends one method request to the device; false when it could not be handed to its connection. */
  sendMethodRequest(deviceId: string, methodName: string, rid: string, payload: string): boolean;
}

/** Why a device's connection ended, for the calls that were waiting for its answers. */
export type GoneReason = "disconnected" | "replaced";

export interface MethodEvents {
  /** The device can now receive method requests (connected with its subscription, or just subscribed). */
  available(deviceId: string): void;
  /** The device's connection ended. */
  gone(deviceId: string, reason: GoneReason): void;
  /**
   * The device answered on `$iothub/methods/res/{status}/?$rid={rid}`. Returns false when no call of this
   * device waits for that request ID (unknown, already answered or timed out, or another device's).
   */
  answered(deviceId: string, rid: string, status: number, body: Buffer): boolean;
}
