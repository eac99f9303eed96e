import type { DeviceRecord, TwinState } from "../twin/device.js";

/**
 * How a DeviceRecord (the registry's in-memory shape) is split into the store's rows, one per concern, and put
 * together again: the identity, the twin (tags and each section), the session. A device has one row of each.
 */

/** The fields of the `sessions` row: connection state, activity, the MQTT session's subscriptions. */
export type SessionFields = Pick<
  DeviceRecord,
  | "connectionState"
  | "connectionStateUpdatedTime"
  | "lastActivityTime"
  | "desiredSubscribed"
  | "twinResponsesSubscribed"
  | "methodsSubscribed"
  | "cloudToDeviceSubscribedAt"
>;

/** The fields of the `identities` row: everything but the twin and the session. */
export type IdentityFields = Omit<DeviceRecord, "twin" | keyof SessionFields>;

export function identityOf(r: DeviceRecord): IdentityFields {
  const {
    twin: _twin,
    connectionState: _state,
    connectionStateUpdatedTime: _stateTime,
    lastActivityTime: _activity,
    desiredSubscribed: _desired,
    twinResponsesSubscribed: _responses,
    methodsSubscribed: _methods,
    cloudToDeviceSubscribedAt: _c2d,
    ...identity
  } = r;
  return identity;
}

/** The session fields of `r` (those that are undefined are left out of the JSON). */
export function sessionOf(r: DeviceRecord): SessionFields {
  return {
    connectionState: r.connectionState,
    connectionStateUpdatedTime: r.connectionStateUpdatedTime,
    lastActivityTime: r.lastActivityTime,
    desiredSubscribed: r.desiredSubscribed,
    twinResponsesSubscribed: r.twinResponsesSubscribed,
    methodsSubscribed: r.methodsSubscribed,
    cloudToDeviceSubscribedAt: r.cloudToDeviceSubscribedAt,
  };
}

/** The record again, from its three rows. */
export function recordOf(
  identity: IdentityFields,
  twin: TwinState,
  session: Partial<SessionFields>,
): DeviceRecord {
  return { ...identity, ...(session as SessionFields), twin };
}
